"""ONNX -> TFLite directly with onnx2tf's own TFLite export (one tool, one step).

Slower than the default ONNX -> SavedModel -> TFLite route (onnx2tf's Keras->SavedModel export inside
TFLiteConverter dominates) and not separately cached, but it is the route onnx2tf users know, so
``--route onnx,tflite`` makes it available. onnx2tf allows Flex ops; edgec refuses a result that
contains any, naming them.

One onnx2tf run writes every variant this edge makes (fp32, fp16, dynamic-range int8), so the run is
kept for the rest of the process (the last ``_KEEP`` inputs, keyed by the ONNX file's bytes and the
settings other than the variant): the second and third variant of a build (``--compare-routes``
builds them all) copy their file instead of converting again (~50 s each on EfficientNet-Lite0).
"""

from __future__ import annotations

import collections
import hashlib
import json
import shutil
import tempfile
import threading
from pathlib import Path

from edgec.errors import ConversionError, UnsupportedOpsError
from edgec.formats import Format, digest
from edgec.formats.tflite import read_tflite
from edgec.convert import Converter, StepContext, register
from edgec.convert._onnx2tf import run_onnx2tf

_FILES = {"fp32": "model_float32.tflite", "fp16": "model_float16.tflite",
          "dynamic_int8": "model_dynamic_range_quant.tflite"}


_KEEP = 2   # onnx2tf runs kept per process
_runs: collections.OrderedDict[str, tuple] = collections.OrderedDict()   # key -> (TemporaryDirectory, rewrites)
_lock = threading.Lock()


def _run_key(ctx: StepContext) -> str:
    h = hashlib.sha256(digest(ctx.input).encode())
    rest = {k: v for k, v in ctx.settings.items() if k != "variant"}
    h.update(json.dumps([rest, [repr(t) for t in ctx.inputs]], sort_keys=True, default=repr).encode())
    return h.hexdigest()


def _onnx2tf_outputs(ctx: StepContext) -> tuple[Path, dict, bool]:
    """The folder onnx2tf wrote every variant's file to, its rewrites, and whether it ran now."""
    key = _run_key(ctx)
    with _lock:
        if key in _runs:
            _runs.move_to_end(key)
            work, rewrites = _runs[key]
            return Path(work.name) / "onnx2tf_out", rewrites, False
    work = tempfile.TemporaryDirectory(prefix="edgec-onnx2tflite-")
    try:
        _, _, log, _, rewrites = run_onnx2tf(ctx.input, Path(work.name), ctx.inputs, ctx.settings,
                                   output_signaturedefs=True, copy_onnx_input_output_names_to_tflite=True,
                                   output_dynamic_range_quantized_tflite=True)
    except BaseException:
        work.cleanup()
        raise
    ctx.log.append(log)
    with _lock:
        _runs[key] = (work, rewrites)
        while len(_runs) > _KEEP:
            _runs.popitem(last=False)[1][0].cleanup()
    return Path(work.name) / "onnx2tf_out", rewrites, True


def _convert(ctx: StepContext) -> dict:
    variant = ctx.settings.get("variant", "fp32")
    if variant not in _FILES:
        raise ConversionError(f"variant '{variant}' is not produced by the direct onnx2tf edge",
                              hint=f"choose from {', '.join(_FILES)}")
    out_dir, rewrites, ran = _onnx2tf_outputs(ctx)
    if not ran:
        ctx.log.append(f"onnx2tf: {_FILES[variant]} from this process's earlier onnx2tf run on the same ONNX "
                       "and settings (one run writes every variant)\n")
    produced = out_dir / _FILES[variant]
    if not produced.is_file():
        raise ConversionError(f"onnx2tf did not write {produced.name}", where=str(ctx.input))
    flex = read_tflite(produced).custom_ops()
    if flex:
        raise UnsupportedOpsError("onnx->tflite (onnx2tf)", flex, where=str(ctx.input),
                                  hint="these became Flex/custom ops that the target runtime cannot run")
    shutil.copyfile(produced, ctx.output)
    return {"variant": variant, "rewrites": rewrites}


register(Converter(
    name="onnx_to_tflite", src=Format.ONNX, dst=Format.TFLITE, run=_convert,
    tools=("onnx2tf", "tensorflow", "tf-keras", "onnx", "onnxsim"),
    uses=("input_shapes", "keep_layout", "onnx2tf", "variant"), cost=2.5,
    description="onnx2tf's own TFLite output (the tool as users run it by hand)"))
