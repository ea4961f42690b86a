"""TF SavedModel -> ONNX with tf2onnx: a cross-check edge, never on a default route.

tf2onnx 1.17 has known silent failures (a dropped fully-connected bias, ``Erfc``), so its output is
only trusted after edgec's parity check. It runs as a subprocess with an argument list and a
timeout; its stderr tail is kept in the error.
"""

from __future__ import annotations

import subprocess
import sys

from edgec.errors import ConversionError
from edgec.formats import Format
from edgec.convert import Converter, StepContext, register

TF2ONNX_OPSET = 17
TIMEOUT_S = 1800


def _convert(ctx: StepContext) -> dict:
    opset = min(int(ctx.settings.get("opset") or TF2ONNX_OPSET), 18)
    cmd = [sys.executable, "-m", "tf2onnx.convert", "--saved-model", str(ctx.input),
           "--signature_def", "serving_default", "--opset", str(opset), "--output", str(ctx.output)]
    try:
        proc = subprocess.run(cmd, capture_output=True, text=True, timeout=TIMEOUT_S)
    except subprocess.TimeoutExpired as exc:
        raise ConversionError(f"tf2onnx timed out after {TIMEOUT_S}s", where=str(ctx.input)) from exc
    ctx.log.append(proc.stderr)
    if proc.returncode != 0 or not ctx.output.exists():
        tail = " | ".join([ln for ln in proc.stderr.splitlines() if ln.strip()][-3:])[-400:]
        raise ConversionError(f"tf2onnx failed (exit {proc.returncode}): {tail}", where=str(ctx.input))
    return {"opset": opset}


register(Converter(
    name="tf_to_onnx", src=Format.SAVED_MODEL, dst=Format.ONNX, run=_convert,
    tools=("tf2onnx", "tensorflow", "onnx"), uses=("opset",), cost=3.0,
    description="tf2onnx (cross-check edge; output is parity-checked like any other)"))
