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
    # Each model fed by signature name in real values (quantized I/O converted by the runner).
    from edgec.runtime.tflite import TFLite

    parent, child = TFLite(plan.parent, threads=threads).load(), TFLite(bundle_path, threads=threads).load()
    rng = np.random.default_rng(seed)
    per_output: list[list[dict]] = [[] for _ in plan.outputs]
    for _ in range(SAMPLES):
        fp, fc = _feeds(plan, rng)
        yp, yc = parent.infer(fp), child.infer(fc)
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
