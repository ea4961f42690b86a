"""``edgec parity A B``: any two models on the same inputs; their outputs compared, and, when one is
a TFLite model, the first layer where it parts from the other (``edgec.validate.localize``).

A is the reference. B is walked layer by layer when it is a TFLite model (else A, when A is one).
The reference side for that walk is A itself when it is a TFLite model (tensors matched by name)
or an ONNX model (matched by shape and value); a TorchScript/ExportedProgram A is exported to ONNX
first (edgec's own exporter, opset 17/20). TFLite models run in worker processes.
"""

from __future__ import annotations

import tempfile
from pathlib import Path

from edgec.errors import UnsupportedModelError, UsageError
from edgec.formats import Format, TensorSpec, detect_format
from edgec.runtime.isolated import ArrayStore, error_from, run_task, write_feeds

MAX_SAMPLES = 500  # outputs are compared on up to this many samples; layers on --samples

SUPPORTED = (Format.TFLITE, Format.ONNX, Format.TORCHSCRIPT, Format.EXPORTED_PROGRAM)
TORCH = (Format.TORCHSCRIPT, Format.EXPORTED_PROGRAM)
FLOAT_LIMITS = {"fp32": {"atol": 1e-4, "cosine": 0.99999}}


def default_budget(path: Path, fmt: Format) -> tuple[str, dict]:
    """(kind, budget) for a model under test: its variant's default cosine budget."""
    from edgec.validate.ledger import DEFAULT_BUDGETS

    if fmt is not Format.TFLITE:
        return "fp32", dict(FLOAT_LIMITS["fp32"])
    from edgec.bench import variant_of

    variant = variant_of(path)
    budget = FLOAT_LIMITS.get(variant) or {k: v for k, v in DEFAULT_BUDGETS[variant].items() if k != "top1"}
    return variant, dict(budget)


def _tflite_specs(path: Path, kind: str = "inputs") -> list[TensorSpec]:
    """A TFLite model's inputs (or outputs) by their signature names, in the model's order."""
    from edgec.formats.tflite import read_tflite

    info = read_tflite(path)
    tensors = info.inputs if kind == "inputs" else info.outputs
    sig = info.signatures.get("serving_default", {}).get(kind, {})
    by_tensor = {t: n for n, t in sig.items()}
    return [TensorSpec(by_tensor.get(t.name, t.name), t.shape, t.dtype) for t in tensors]


def _specs(path: Path, fmt: Format, shapes: dict) -> list[TensorSpec]:
    if fmt is Format.TFLITE:
        return [TensorSpec(s.name, s.shape, "float32" if s.dtype in ("int8", "uint8", "int16") else s.dtype)
                for s in _tflite_specs(path)]
    from types import SimpleNamespace

    from edgec.formats import Artifact
    from edgec.pipeline.sources import probe

    cfg = SimpleNamespace(input_shapes=shapes, input_dtypes={})
    info = probe(Artifact(path, fmt), cfg)
    return [TensorSpec.from_dict(d) for d in info["inputs"]]


def _run(path: Path, fmt: Format, inputs, outputs, feeds: Path, out: Path) -> dict:
    """Outputs of one model on every sample: TFLite in a worker, the others here."""
    if fmt is Format.TFLITE:
        return run_task({"task": "tflite_outputs", "model": str(path), "inputs": str(feeds), "outputs": str(out),
                         "source_inputs": [s.to_dict() for s in inputs],
                         "source_outputs": [s.to_dict() for s in outputs]})
    from edgec.runtime.loaders import load_torch
    from edgec.runtime.runners import runner_for
    from edgec.runtime.isolated import read_feeds

    module = load_torch(path, fmt) if fmt in TORCH else None
    runner = runner_for(fmt, path, source_inputs=inputs, source_outputs=outputs, torch_module=module)
    store = ArrayStore(out, ArrayStore(feeds).samples())
    for i, feed in enumerate(read_feeds(feeds)):
        store.put(i, runner.infer(feed))
    store.close()
    return {"runtime": runner.name}


def _output_specs(a: Path, fa: Format, inputs, feeds: Path, work: Path) -> list[TensorSpec]:
    """The reference's outputs (names, shapes): from the file, or from running it once."""
    if fa is Format.TFLITE:
        return _tflite_specs(a, "outputs")
    if fa is Format.ONNX:
        from edgec.runtime.loaders import load_onnx, onnx_io

        return onnx_io(load_onnx(a))[1]
    from edgec.runtime.loaders import load_torch
    from edgec.runtime.runners import TorchRunner
    from edgec.runtime.isolated import read_feeds

    ys = TorchRunner(load_torch(a, fa)).infer(next(read_feeds(feeds, 1)))
    return [TensorSpec(f"output_{i}", tuple(y.shape), str(y.dtype)) for i, y in enumerate(ys)]


def _as_onnx(path: Path, fmt: Format, inputs, work: Path) -> Path:
    """A torch reference exported to ONNX for the layer walk (edgec's own exporter)."""
    from edgec.convert import StepContext, converters

    conv = next(c for c in converters() if c.src is fmt and c.dst is Format.ONNX)
    out = work / "reference.onnx"
    conv.run(StepContext(path, out, inputs, {"exporter": "auto", "opset": None, "input_shapes": {},
                                              "input_dtypes": {}}))
    return out


def _data(a: Path, inputs, data: str | None, synthetic: bool, preprocess: dict):
    from edgec.data import datasets

    if data:
        pre = datasets.Preprocess(preprocess.get("image_resize"), preprocess.get("mean"), preprocess.get("std"),
                                  preprocess.get("channel_order") or "rgb", preprocess.get("image_layout"))
        return datasets.load(data, inputs, pre, limit=MAX_SAMPLES, role="comparison")
    if not synthetic:
        raise UsageError("no data to compare the models on", where=str(a),
                         hint="pass --data PATH (image folder, .npy/.npz, or package.module:function), or "
                              "--synthetic for random inputs")
    return datasets.synthetic(inputs, 8, 0)


def _layer_walk(a, fa, b, fb, inputs, outputs, feeds: Path, samples: int, limits: dict, top: int, work: Path):
    if fb is Format.TFLITE:
        ref, ref_fmt, got = a, fa, b
    elif fa is Format.TFLITE:
        ref, ref_fmt, got = b, fb, a
    else:
        return {"note": "no TFLite model among A and B: outputs compared only"}
    if ref_fmt in TORCH:
        ref, ref_fmt = _as_onnx(ref, ref_fmt, inputs, work), Format.ONNX
    task = {"task": "layers", "ref": str(ref), "ref_kind": "tflite" if ref_fmt is Format.TFLITE else "onnx",
            "got": str(got), "inputs": str(feeds), "samples": samples, "limits": limits, "top": top,
            "source_inputs": [s.to_dict() for s in inputs], "source_outputs": [s.to_dict() for s in outputs]}
    return run_task(task)


def compare_models(a, b, *, data: str | None = None, synthetic: bool = False, samples: int = 8,
                   budget: dict | None = None, top: int = 5, input_shapes: dict | None = None,
                   **preprocess) -> dict:
    """Compare model ``b`` with the reference ``a`` on the same inputs; the report names the first
    divergent layer (by B's tensor name) when one of them is a TFLite model."""
    from edgec.validate.compare import verdict
    from edgec.validate.ledger import _compare
    from edgec.validate.localize import layer_limits

    a, b = Path(a), Path(b)
    fa, fb = detect_format(a), detect_format(b)
    for p, f in ((a, fa), (b, fb)):
        if f not in SUPPORTED:
            raise UsageError(f"`edgec parity` compares .tflite, .onnx and TorchScript/ExportedProgram models, "
                             f"not {f.value}", where=str(p), hint="convert it with `edgec build` first")
    inputs = _specs(a, fa, input_shapes or {})
    ds = _data(a, inputs, data, synthetic, preprocess)
    kind, default = default_budget(b, fb)
    budget = budget or default
    with tempfile.TemporaryDirectory(prefix="edgec-parity-") as d:
        work = Path(d)
        feeds = write_feeds(work / "inputs", [s.name for s in inputs], (s.feed for s in ds.samples))
        outputs = _output_specs(a, fa, inputs, feeds, work)
        runs = {"a": _run(a, fa, inputs, outputs, feeds, work / "a"),
                "b": _run(b, fb, inputs, outputs, feeds, work / "b")}
        for r in runs.values():  # a model the runtime cannot load (a custom op) is refused, as by bench and serve
            exc = error_from(r)
            if isinstance(exc, UnsupportedModelError):
                raise exc
        errors = [f"{k.upper()}: {r['error']}" for k, r in runs.items() if r.get("error")]
        per_output = [] if errors else _compare(work / "a", work / "b")
        layers = _layer_walk(a, fa, b, fb, inputs, outputs, feeds, min(samples, len(ds.samples)),
                             layer_limits(budget), top, work)
    rows = [{"output": outputs[i].name if i < len(outputs) else f"output_{i}", **m,
             "misses": verdict(m, budget)[1]} for i, m in enumerate(per_output)]
    ok = not errors and all(not r["misses"] for r in rows)
    return {"a": str(a), "b": str(b), "formats": [fa.value, fb.value], "b_kind": kind, "budget": budget,
            "data": ds.record(), "synthetic": ds.synthetic, "errors": errors, "outputs": rows, "layers": layers,
            "ok": ok, "verdict": "within budget" if ok else "; ".join(errors or [m for r in rows for m in r["misses"]])}


def render(r: dict) -> str:
    from edgec.validate.localize import describe
    from edgec.validate.table import _NUMERIC, COLUMNS, _row, align

    src = r["data"]
    lines = [f"A {r['a']} ({r['formats'][0]})  vs  B {r['b']} ({r['formats'][1]}, {r['b_kind']})",
             f"inputs: {src['samples']} {'SYNTHETIC random samples' if r['synthetic'] else 'samples from ' + src['source']}"
             f"; budget {', '.join(f'{k} {v:g}' for k, v in r['budget'].items())}"]
    rows = [list(COLUMNS)] + [_row(o["output"][:18], "A", o, "ok" if not o["misses"] else "MISS: " + "; ".join(o["misses"]))
                              for o in r["outputs"]]
    lines += align(rows, right=_NUMERIC)
    lines += [f"error: {e}" for e in r["errors"]]
    layers = r["layers"]
    if layers.get("note"):
        lines.append(layers["note"])
    else:
        lines.append(describe(layers))
        f = layers.get("first_divergent")
        if f:
            lines.append(f"  tensor: {f['tensor']}")
            lines.append(f"  reference tensor: {f['reference_tensor']} (matched by {f['matched_by']})")
        lines.append(f"worst {len(layers.get('worst') or [])} layers by SNR ({layers.get('compared', 0)} compared on "
                     f"{layers.get('samples', 0)} samples):")
        for w in layers.get("worst") or []:
            lines.append(f"  #{w['index']:<4} {w['op']:<18} snr {w['snr_db']:7.1f} dB  cos {w['cosine']:.6f}  {w['tensor']}")
    lines.append("OK" if r["ok"] else f"PARITY MISS: {r['verdict']}")
    return "\n".join(lines)
