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
import re
import shutil
import sys
import tempfile
from pathlib import Path

import numpy as np

from edgec.errors import ConversionError, UnsupportedOpsError, require
from edgec.formats import TensorSpec
from edgec.runtime.loaders import load_onnx, onnx_io, resolve_shapes

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


# edgec's names for the onnx2tf options a route attempt may set (``settings["onnx2tf"]``), what each
# does, and the onnx2tf keyword it becomes. The route search (``edgec.convert.routes``) sets them; a user
# never needs onnx2tf's own flag names.
OPTIONS = {
    "input_layout": "as_given: every input keeps its shape (no NCHW->NHWC transpose)",
    "batch_size": "N: a static batch size for every input",
    "nms_dynamic_output": "NonMaxSuppression outputs keep their dynamic number of boxes",
    "rnn_unroll": "LSTM/GRU/RNN loops are unrolled into plain ops",
    "simplify": "false: onnx2tf's own onnxsim step is skipped",
}


def onnx2tf_kwargs(options: dict, resolved: list[TensorSpec], keep_layout: bool) -> dict:
    """onnx2tf keyword arguments for edgec's layout rules plus a route attempt's ``options``."""
    unknown = sorted(set(options) - set(OPTIONS))
    if unknown:
        raise ConversionError(f"unknown onnx2tf option(s) {', '.join(unknown)}", hint=f"known: {', '.join(OPTIONS)}")
    as_given = options.get("input_layout") == "as_given"
    keep_nchw = [s.name for s in resolved if keep_layout and not as_given and len(s.shape) >= 3]
    keep_shape = [s.name for s in resolved
                  if as_given or (not is_image_input(s) and s.name not in keep_nchw)]
    kw = {"keep_ncw_or_nchw_or_ncdhw_input_names": keep_nchw or None,
          "keep_shape_absolutely_input_names": keep_shape or None}
    if options.get("batch_size"):
        kw["batch_size"] = int(options["batch_size"])
    if options.get("nms_dynamic_output"):
        kw["output_nms_with_dynamic_tensor"] = True
    if options.get("rnn_unroll"):
        kw["enable_rnn_unroll"] = True
    if options.get("simplify") is False:
        kw["not_use_onnxsim"] = True
    return kw


def run_onnx2tf(onnx_path: Path, workdir: Path, inputs: list[TensorSpec], settings: dict, **kwargs):
    """Run onnx2tf on a private, rewritten copy of the ONNX; return
    (keras_model, onnx_model, log_text, resolved_inputs, rewrites) where ``rewrites`` maps each
    rewrite that ran (``edgec.passes.onnx_rewrites``) to the number of nodes it replaced."""
    from edgec.passes.onnx_rewrites import apply_rewrites

    require("onnx2tf", purpose="ONNX to TensorFlow")
    model = load_onnx(onnx_path)
    rewrites = apply_rewrites(model)
    scan_unsupported(model, str(onnx_path))
    onnx_ins, _ = onnx_io(model)
    shapes = dict(settings.get("input_shapes") or {})
    resolved = resolve_shapes(onnx_ins, {k: v for k, v in shapes.items() if k in {s.name for s in onnx_ins}},
                              {}, str(onnx_path))
    layout_kw = onnx2tf_kwargs(dict(settings.get("onnx2tf") or {}), resolved, bool(settings.get("keep_layout")))
    overwrite = [f"{s.name}:{','.join(map(str, s.shape))}" for s, o in zip(resolved, onnx_ins)
                 if not o.is_static]
    if layout_kw.get("batch_size"):
        overwrite = []  # onnx2tf takes one or the other
    has_erf = any(n.op_type == "Erf" for n, _ in _walk_nodes(model.graph))
    workdir.mkdir(parents=True, exist_ok=True)
    local = workdir / "model.onnx"
    if rewrites:
        _save_onnx(model, local)
    else:
        shutil.copyfile(onnx_path, local)
    log = io.StringIO()
    from edgec.logs import captured, enabled

    with _onnx2tf_sandbox() as core, _shown_with_debug(log, enabled()), captured(), \
            contextlib.redirect_stdout(log), contextlib.redirect_stderr(log):
        try:
            keras_model = core.convert(
                input_onnx_file_path=str(local),
                output_folder_path=str(workdir / "onnx2tf_out"),
                overwrite_input_shape=overwrite or None,
                replace_to_pseudo_operators=["erf"] if has_erf else None,
                non_verbose=True,
                **layout_kw,
                **kwargs,
            )
        except SystemExit as exc:
            raise onnx2tf_error(f"onnx2tf stopped (exit {exc.code})", log.getvalue(), onnx_path) from exc
        except Exception as exc:
            raise onnx2tf_error(f"onnx2tf failed: {type(exc).__name__}: {_clean(str(exc))[:300]}",
                                log.getvalue(), onnx_path) from exc
    if keras_model is None:
        raise onnx2tf_error("onnx2tf produced no model", log.getvalue(), onnx_path)
    return keras_model, model, log.getvalue(), resolved, rewrites


@contextlib.contextmanager
def _shown_with_debug(log: io.StringIO, debug: bool):
    """onnx2tf's own output is kept in ``log`` for the error; ``--debug`` also shows it, whole."""
    try:
        yield
    finally:
        if debug and log.getvalue().strip():
            sys.stderr.write(log.getvalue() if log.getvalue().endswith("\n") else log.getvalue() + "\n")
            sys.stderr.flush()


# onnx2tf ends every failed op with the same advice about its own CLI flags (-b/-ois, -kt/-kat,
# -onwdt). An edgec user cannot type those, so the advice is taken out of the message and kept as
# keys the route search translates into attempts of its own (``edgec.convert.routes``).
_ADVICE = {
    "static_shape": re.compile(r"use the -b or -ois option|--batch_size option"),
    "input_layout": re.compile(r"use the -kt or -kat option|irregular channel arrangement"),
    "nms_dynamic_output": re.compile(r"try the -onwdt option"),
}
_ADVICE_LINE = re.compile(r"-b or -ois|-kt or -kat|-onwdt|parameter-replacement|Read this and deal with it|"
                          r"The trace log is below|--batch_size option")


def onnx2tf_error(what: str, log: str, onnx_path: Path) -> ConversionError:
    """A ConversionError naming the ONNX node onnx2tf stopped at and its own error line, with the
    advice it printed as ``err.advice`` (keys of ``_ADVICE``), not as text."""
    text = _clean(log)
    advice = sorted(k for k, rx in _ADVICE.items() if rx.search(text))
    node = re.findall(r"onnx_op_name: ([^\n|]+)", text)
    node_txt = f" at ONNX node '{node[-1].strip()}'" if node else ""
    tail = _tail(text)
    said = tail.replace("ERROR:", "").strip()
    err = ConversionError(f"{what}{node_txt}" + ("" if said and said in what else f": {tail}"), where=str(onnx_path),
                          hint="run with --debug for onnx2tf's full log")
    err.advice = advice
    err.node = node[-1].strip() if node else None
    return err


def _clean(text: str) -> str:
    return re.sub(r"\x1b\[[0-9;]*m", "", text or "")


def _save_onnx(model, path: Path) -> None:
    import onnx

    # Protobuf cannot serialize 2 GiB; larger models keep their weights in a file beside the graph.
    large = sum(len(t.raw_data) for t in model.graph.initializer) > (1 << 30)
    onnx.save(model, str(path), save_as_external_data=large, location=path.name + ".data" if large else None)


def _tail(text: str, n: int = 400) -> str:
    from edgec.logs import is_noise

    text = _clean(text)
    lines = [ln.strip() for ln in text.splitlines() if ln.strip() and not _ADVICE_LINE.search(ln) and not is_noise(ln)
             and not ln.startswith("File \"") and "onnx_op_name:" not in ln and "input_onnx_file_path:" not in ln]
    errs = [ln for ln in lines if "ERROR" in ln or "Error" in ln]
    last = list(dict.fromkeys((errs or lines)[::-1]))[:3][::-1]  # the last three distinct lines
    picked = " | ".join(last)
    return picked[-n:] if picked else "(no output)"


def tempdir(prefix: str):
    return tempfile.TemporaryDirectory(prefix=prefix)
