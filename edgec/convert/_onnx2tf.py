"""Running onnx2tf in-process, safely, for the two edges that use it (ONNX->TF, ONNX->TFLite).

What this adds around onnx2tf:
- one scan of the whole graph for ops onnx2tf has no converter for, before it runs;
- a private working copy of the ONNX (onnx2tf's onnxsim step rewrites its input in place);
- the venv's ``bin`` on PATH so onnx2tf finds ``onnxsim`` (it silently skips it otherwise);
- no network: onnx2tf fetches a calibration sample from GitHub for 4-D 3-channel inputs; edgec
  hands it a local deterministic sample instead;
- layout flags: image inputs (rank 4) go NHWC unless --keep-layout; other inputs keep their shape;
- ``Erf`` is replaced by onnx2tf's builtin-op approximation (max error 1.5e-7) so no Flex op appears;
- ops onnx2tf mishandles are rewritten into equivalent ones first (``edgec.passes.onnx_rewrites``, on
  the private copy); the rewrites that ran are returned so the step's metadata records them;
- its ``sys.exit`` calls and noisy output become a ConversionError that keeps the log tail.
"""

from __future__ import annotations

import contextlib
import io
import os
import pkgutil
import shutil
import sys
import tempfile
from pathlib import Path

import numpy as np

from ..errors import ConversionError, UnsupportedOpsError, require
from ..formats import TensorSpec
from ..loaders import load_onnx, onnx_io, resolve_shapes

_STD_DOMAINS = ("", "ai.onnx")


def supported_ops() -> set[str]:
    ops_pkg = require("onnx2tf.ops", purpose="ONNX to TensorFlow")
    return {m.name for m in pkgutil.iter_modules(ops_pkg.__path__) if not m.name.startswith("_")}


def _walk_nodes(graph, prefix=""):
    for node in graph.node:
        yield node, prefix
        for attr in node.attribute:
            if attr.g is not None and attr.g.node:
                yield from _walk_nodes(attr.g, f"{prefix}{node.name}/")
            for g in attr.graphs:
                yield from _walk_nodes(g, f"{prefix}{node.name}/")


def scan_unsupported(model, where: str) -> None:
    """Raise one error listing every op (with node names) that onnx2tf cannot convert."""
    known = supported_ops()
    bad: dict[str, list[str]] = {}
    for i, (node, prefix) in enumerate(_walk_nodes(model.graph)):
        if node.domain not in _STD_DOMAINS:
            key = f"{node.domain}::{node.op_type}"
        elif node.op_type not in known:
            key = node.op_type
        else:
            continue
        bad.setdefault(key, []).append(prefix + (node.name or f"node#{i}"))
    if bad:
        raise UnsupportedOpsError("onnx->tf (onnx2tf)", bad, where=where)


def is_image_input(spec: TensorSpec) -> bool:
    return len(spec.shape) == 4 and spec.shape[1] in (1, 3, 4)


def _calibration_sample() -> np.ndarray:
    # What onnx2tf would download: [20,128,128,3] float32 in [0,1]. It only feeds onnx2tf's own
    # internal checks; edgec's parity ledger uses its own inputs.
    rng = np.random.default_rng(0)
    return rng.random((20, 128, 128, 3), dtype=np.float32)


@contextlib.contextmanager
def _onnx2tf_sandbox():
    import onnx2tf.onnx2tf as core

    saved_dl = getattr(core, "download_test_image_data", None)
    saved_path = os.environ.get("PATH", "")
    bindir = str(Path(sys.executable).parent)
    core.download_test_image_data = _calibration_sample
    os.environ["PATH"] = bindir + os.pathsep + saved_path
    try:
        yield core
    finally:
        if saved_dl is not None:
            core.download_test_image_data = saved_dl
        os.environ["PATH"] = saved_path


def run_onnx2tf(onnx_path: Path, workdir: Path, inputs: list[TensorSpec], settings: dict, **kwargs):
    """Run onnx2tf on a private, rewritten copy of the ONNX; return
    (keras_model, onnx_model, log_text, resolved_inputs, rewrites) where ``rewrites`` maps each
    rewrite that ran (``edgec.passes.onnx_rewrites``) to the number of nodes it replaced."""
    from ..passes.onnx_rewrites import apply_rewrites

    require("onnx2tf", purpose="ONNX to TensorFlow")
    model = load_onnx(onnx_path)
    rewrites = apply_rewrites(model)
    scan_unsupported(model, str(onnx_path))
    onnx_ins, _ = onnx_io(model)
    shapes = dict(settings.get("input_shapes") or {})
    resolved = resolve_shapes(onnx_ins, {k: v for k, v in shapes.items() if k in {s.name for s in onnx_ins}},
                              {}, str(onnx_path))
    keep_layout = bool(settings.get("keep_layout"))
    keep_nchw = [s.name for s in resolved if keep_layout and len(s.shape) >= 3]
    keep_shape = [s.name for s in resolved if not is_image_input(s) and s.name not in keep_nchw]
    overwrite = [f"{s.name}:{','.join(map(str, s.shape))}" for s, o in zip(resolved, onnx_ins)
                 if not o.is_static]
    has_erf = any(n.op_type == "Erf" for n, _ in _walk_nodes(model.graph))
    workdir.mkdir(parents=True, exist_ok=True)
    local = workdir / "model.onnx"
    if rewrites:
        _save_onnx(model, local)
    else:
        shutil.copyfile(onnx_path, local)
    log = io.StringIO()
    with _onnx2tf_sandbox() as core, contextlib.redirect_stdout(log), contextlib.redirect_stderr(log):
        try:
            keras_model = core.convert(
                input_onnx_file_path=str(local),
                output_folder_path=str(workdir / "onnx2tf_out"),
                keep_ncw_or_nchw_or_ncdhw_input_names=keep_nchw or None,
                keep_shape_absolutely_input_names=keep_shape or None,
                overwrite_input_shape=overwrite or None,
                replace_to_pseudo_operators=["erf"] if has_erf else None,
                non_verbose=True,
                **kwargs,
            )
        except SystemExit as exc:
            raise ConversionError(f"onnx2tf stopped (exit {exc.code}): {_tail(log.getvalue())}",
                                  where=str(onnx_path), hint="run with --debug, or try another --route") from exc
        except Exception as exc:
            raise ConversionError(f"onnx2tf failed: {type(exc).__name__}: {str(exc)[:300]}; "
                                  f"log: {_tail(log.getvalue())}", where=str(onnx_path),
                                  hint="run with --debug, or try another --route") from exc
    if keras_model is None:
        raise ConversionError(f"onnx2tf produced no model: {_tail(log.getvalue())}", where=str(onnx_path))
    return keras_model, model, log.getvalue(), resolved, rewrites


def _save_onnx(model, path: Path) -> None:
    import onnx

    # Protobuf cannot serialize 2 GiB; larger models keep their weights in a file beside the graph.
    large = sum(len(t.raw_data) for t in model.graph.initializer) > (1 << 30)
    onnx.save(model, str(path), save_as_external_data=large, location=path.name + ".data" if large else None)


def _tail(text: str, n: int = 400) -> str:
    import re

    text = re.sub(r"\x1b\[[0-9;]*m", "", text)
    lines = [ln.strip() for ln in text.splitlines() if ln.strip()]
    errs = [ln for ln in lines if "ERROR" in ln or "Error" in ln]
    picked = " | ".join((errs or lines)[-3:])
    return picked[-n:] if picked else "(no output)"


def tempdir(prefix: str):
    return tempfile.TemporaryDirectory(prefix=prefix)
