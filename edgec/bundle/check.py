"""The bundle's own check: every bundle model against the build variant it was made from, each fed
what it expects. A folded image input gets pixels (``pixel / 255`` or uint8); its parent gets the
same pixels normalized the way the source model expects them. A model whose graph the bundle did
not change (metadata only) must give bit-identical outputs; a folded one must stay within a cosine
budget (the fold moves float rounding, and dynamic-range or full-integer kernels may round the
moved values into a neighbouring step)."""

from __future__ import annotations

from pathlib import Path

import numpy as np

from edgec.validate.compare import merge, metrics, verdict
from edgec.bundle.plan import ModelPlan, TensorPlan

SAMPLES = 4
FOLDED_MIN_COSINE = {"fp32": 0.99999, "fp16": 0.99999}   # other variants: DEFAULT_MIN_COSINE
DEFAULT_MIN_COSINE = 0.999


class _Lite:
    """A model on ai-edge-litert, fed and read by signature name, in real (dequantized) values."""

    def __init__(self, path: Path, threads: int):
        from ai_edge_litert import interpreter as lite

        self.interp = lite.Interpreter(model_path=str(path), num_threads=threads or None)
        self.runner = self.interp.get_signature_runner("serving_default") \
            if "serving_default" in self.interp.get_signature_list() else None
        if self.runner is not None:
            self.ins, self.outs = self.runner.get_input_details(), self.runner.get_output_details()
        else:
            self.interp.allocate_tensors()
            self.ins = {d["name"]: d for d in self.interp.get_input_details()}
            self.outs = {d["name"]: d for d in self.interp.get_output_details()}

    def run(self, feed: dict[str, np.ndarray]) -> dict[str, np.ndarray]:
        args = {k: _quantize(v, self.ins[k]) for k, v in feed.items()}
        if self.runner is not None:
            res = self.runner(**args)
        else:
            for k, v in args.items():
                self.interp.set_tensor(self.ins[k]["index"], v)
            self.interp.invoke()
            res = {k: self.interp.get_tensor(d["index"]) for k, d in self.outs.items()}
        return {k: _dequantize(v, self.outs[k]) for k, v in res.items()}


def _quantize(x: np.ndarray, d: dict) -> np.ndarray:
    dtype = np.dtype(d["dtype"])
    if x.dtype == dtype:
        return x
    scale, zp = d.get("quantization") or (0.0, 0)
    if dtype.kind in "iu" and x.dtype.kind == "f" and scale:
        info = np.iinfo(dtype)
        return np.clip(np.round(x / scale + zp), info.min, info.max).astype(dtype)
    return x.astype(dtype)


def _dequantize(y: np.ndarray, d: dict) -> np.ndarray:
    scale, zp = d.get("quantization") or (0.0, 0)
    if y.dtype.kind in "iu" and scale:
        return (y.astype(np.float64) - zp) * scale
    return y


def _feeds(plan: ModelPlan, rng) -> tuple[dict, dict]:
    """(parent feed, bundle feed) for one sample."""
    parent, child = {}, {}
    for t in plan.inputs:
        shape = tuple(d or 1 for d in t.shape)
        if t.image:
            pix = rng.integers(0, 256, size=shape, dtype=np.uint8)
            normalized = ((pix - t.per_channel(t.mean)) / t.per_channel(t.std)).astype(np.float32)
            parent[t.sig_name] = normalized
            child[t.sig_name] = normalized if not t.fold else (
                pix if t.fold == "uint8" else (pix.astype(np.float32) / np.float32(255.0)))
        else:
            x = _random(t, shape, rng)
            parent[t.sig_name] = child[t.sig_name] = x
    return parent, child


def _random(t: TensorPlan, shape, rng) -> np.ndarray:
    if t.dtype.startswith("float"):
        return rng.standard_normal(shape).astype(t.dtype)
    if t.dtype == "bool":
        return rng.integers(0, 2, shape).astype(bool)
    return rng.integers(0, 100, shape).astype(t.dtype)


def check_model(plan: ModelPlan, bundle_path: Path, changed: bool, threads: int = 0, seed: int = 0) -> dict:
    """Per-output metrics of the bundle model against its parent, and the verdict. ``changed``: the
    bundle changed the graph (a fold or a dequantized output), not only its metadata."""
    parent, child = _Lite(plan.parent, threads), _Lite(bundle_path, threads)
    rng = np.random.default_rng(seed)
    per_output: list[list[dict]] = [[] for _ in plan.outputs]
    for _ in range(SAMPLES):
        fp, fc = _feeds(plan, rng)
        yp, yc = parent.run(fp), child.run(fc)
        for k, t in enumerate(plan.outputs):
            per_output[k].append(metrics(yp[t.sig_name], yc[t.sig_name]))
    budget = {"cosine": FOLDED_MIN_COSINE.get(plan.variant, DEFAULT_MIN_COSINE)} if changed else {"atol": 0.0}
    outputs = []
    for t, ms in zip(plan.outputs, per_output):
        m = merge(ms)
        ok, misses = verdict(m, budget)
        outputs.append({"output": t.source, **{k: m.get(k) for k in ("max_abs", "cosine", "top1")}, "ok": ok,
                        "misses": misses})
    return {"against": f"build variant {plan.variant} ({plan.file})", "samples": SAMPLES,
            "inputs": "seeded random pixels (uint8); each model fed what it expects", "budget": budget,
            "ok": all(o["ok"] for o in outputs), "outputs": outputs}
