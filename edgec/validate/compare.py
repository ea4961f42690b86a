"""The comparator: per-output error metrics and a verdict against a budget.

A comparison returns numbers per output (never a bare bool): max/mean abs error, max relative
error (|got - ref| / max(|ref|, 1e-3 max|ref|), so that elements near zero do not dominate it),
cosine similarity, SNR in dB (10 log10 of signal over error
energy), and for classifier-like outputs ([batch, classes] floats) top-1 and top-5 agreement (the
reference's top-1 class is the candidate's top-1 / among its top 5), also over the confident rows.
Per-sample results merge to the worst case for errors and to exact counts for agreement.
Non-finite values are reported, never hidden: max_abs inf, cosine 0, SNR -inf, finite false.
"""

from __future__ import annotations

import math

import numpy as np

_EPS = 1e-12
REL_FLOOR = 1e-3  # max_rel divides by max(|ref|, REL_FLOOR x max|ref|): near-zero elements do not explode it
CONFIDENT = 0.5   # top1_confident: agreement where the reference's top-1 probability is >= this
MARGIN = 0.01     # top1_separated: agreement where the reference's top-1 leads the 2nd by >= this
_COUNTS = ("rows", "top1_hits", "top5_hits", "confident_rows", "confident_hits", "separated_rows",
           "separated_hits")


def metrics(ref: np.ndarray, got: np.ndarray) -> dict:
    """Error metrics of ``got`` against ``ref`` (same shape); NaN/Inf are reported, not hidden."""
    ref = np.asarray(ref)
    got = np.asarray(got)
    if ref.shape != got.shape:
        return {"shape_mismatch": [list(ref.shape), list(got.shape)], "max_abs": math.inf, "mean_abs": math.inf,
                "max_rel": math.inf, "cosine": 0.0, "snr_db": -math.inf}
    r = ref.astype(np.float64).ravel()
    g = got.astype(np.float64).ravel()
    finite = bool(np.isfinite(g).all() and np.isfinite(r).all())
    if r.size == 0:
        return {"max_abs": 0.0, "mean_abs": 0.0, "max_rel": 0.0, "cosine": 1.0, "snr_db": math.inf,
                "max_abs_scaled": 0.0, "ref_max": 0.0, "finite": True}
    diff = np.abs(r - g)
    max_abs = float(np.max(diff)) if finite else math.inf
    mean_abs = float(np.mean(diff)) if finite else math.inf
    floor = max(REL_FLOOR * float(np.max(np.abs(r))), _EPS) if finite else _EPS
    max_rel = float(np.max(diff / np.maximum(np.abs(r), floor))) if finite else math.inf
    nr, ng = float(np.linalg.norm(r)), float(np.linalg.norm(g))
    if not finite:
        cosine = 0.0
    elif nr < _EPS and ng < _EPS:
        cosine = 1.0  # two zero vectors agree
    elif nr < _EPS or ng < _EPS:
        cosine = 0.0
    else:
        cosine = float(np.clip(np.dot(r, g) / (nr * ng), -1.0, 1.0))
    noise = float(np.sum((r - g) ** 2)) if finite else math.inf
    signal = float(np.sum(r ** 2)) if finite else 0.0
    snr = _snr(signal, noise)
    ref_max = float(np.max(np.abs(r))) if finite else math.inf
    out = {"max_abs": max_abs, "mean_abs": mean_abs, "max_rel": max_rel, "cosine": cosine, "snr_db": snr,
           "max_abs_scaled": max_abs / max(1.0, ref_max) if finite else math.inf, "ref_max": ref_max,
           "finite": finite, "_signal": signal, "_noise": noise}
    if is_classifier(ref) and finite:
        out.update(agreement(ref, got))
    return out


def _snr(signal: float, noise: float) -> float:
    """10 log10(signal / noise) in dB: inf without error, -inf for non-finite error."""
    if noise == 0.0:
        return math.inf
    if not math.isfinite(noise):
        return -math.inf
    return 10.0 * math.log10(max(signal, _EPS) / noise)


def public(m: dict) -> dict:
    """A metrics dict without its private accumulators (the ``_``-prefixed energies)."""
    return {k: v for k, v in m.items() if not k.startswith("_")}


def is_classifier(ref: np.ndarray) -> bool:
    """Classifier-like: float scores of shape [batch, classes] with more than one class."""
    return ref.ndim == 2 and ref.shape[-1] > 1 and ref.dtype.kind == "f"


def probabilities(scores: np.ndarray) -> np.ndarray:
    """Rows that already are probabilities stay; logits go through a softmax."""
    s = scores.astype(np.float64)
    if (s >= 0).all() and np.allclose(s.sum(-1), 1.0, atol=1e-3):
        return s
    e = np.exp(s - s.max(-1, keepdims=True))
    return e / e.sum(-1, keepdims=True)


def agreement(ref: np.ndarray, got: np.ndarray) -> dict:
    """Top-1 / top-5 agreement of ``got`` with ``ref`` per row, also counted over the rows where the
    reference is confident (top-1 probability >= CONFIDENT) and where its top-1 leads the second by
    >= MARGIN. Counts are kept so samples merge exactly; fractions are the counts' ratios."""
    p = probabilities(ref)
    order = np.argsort(-p, axis=-1)
    ref1 = order[:, 0]
    got_top = np.argsort(-got.astype(np.float64), axis=-1)[:, :5]
    hit1 = got_top[:, 0] == ref1
    hit5 = (got_top == ref1[:, None]).any(-1)
    p1 = p[np.arange(len(p)), ref1]
    p2 = p[np.arange(len(p)), order[:, 1]]
    confident, separated = p1 >= CONFIDENT, (p1 - p2) >= MARGIN
    counts = {"rows": len(p), "top1_hits": int(hit1.sum()), "top5_hits": int(hit5.sum()),
              "confident_rows": int(confident.sum()), "confident_hits": int((hit1 & confident).sum()),
              "separated_rows": int(separated.sum()), "separated_hits": int((hit1 & separated).sum())}
    return {**counts, **_fractions(counts)}


def _fractions(c: dict) -> dict:
    def frac(hits: int, rows: int):
        return hits / rows if rows else None

    return {"top1": frac(c["top1_hits"], c["rows"]), "top5": frac(c["top5_hits"], c["rows"]),
            "top1_confident": frac(c["confident_hits"], c["confident_rows"]),
            "top1_separated": frac(c["separated_hits"], c["separated_rows"])}


def merge(batches: list[dict]) -> dict:
    """Combine per-sample metrics. Tolerances are worst cases (max_abs, max_rel); similarity is the
    typical case, so that a verdict does not harden just because more samples were given: cosine
    is the mean over samples, SNR pools the error and signal energy of all samples; their worst
    samples are kept as cosine_min and snr_db_min. Agreement is counted exactly over all rows."""
    if not batches:
        return {}
    signal = sum(b.get("_signal", 0.0) for b in batches)
    noise = sum(b.get("_noise", 0.0) for b in batches)
    out = {"max_abs": max(b["max_abs"] for b in batches), "mean_abs": float(np.mean([b["mean_abs"] for b in batches])),
           "max_rel": max(b["max_rel"] for b in batches),
           "max_abs_scaled": max(b.get("max_abs_scaled", b["max_abs"]) for b in batches),
           "ref_max": max(b.get("ref_max", 0.0) for b in batches),
           "cosine": float(np.mean([b["cosine"] for b in batches])),
           "cosine_min": min(b.get("cosine_min", b["cosine"]) for b in batches),
           "snr_db": _snr(signal, noise) if all("_signal" in b for b in batches) else min(b["snr_db"] for b in batches),
           "snr_db_min": min(b.get("snr_db_min", b["snr_db"]) for b in batches),
           "finite": all(b.get("finite", True) for b in batches),
           "samples": sum(b.get("samples", 1) for b in batches)}
    if all("rows" in b for b in batches):
        counts = {k: sum(b[k] for b in batches) for k in _COUNTS}
        out.update(counts)
        out.update(_fractions(counts))
    if any("shape_mismatch" in b for b in batches):
        out["shape_mismatch"] = next(b["shape_mismatch"] for b in batches if "shape_mismatch" in b)
    return out


def verdict(m: dict, budget: dict) -> tuple[bool, list[str]]:
    """Does metric dict ``m`` meet ``budget``? Returns (ok, misses). Keys: atol (max abs error),
    atol_scaled (max abs error <= atol_scaled x max(1, max |ref|): an absolute tolerance for outputs
    within [-1, 1] that grows with the output's scale, as float32's own resolution does), rtol
    (max relative error), cosine (mean cosine), snr_db (pooled SNR), top1 (agreement over all rows),
    top1_confident (agreement over the rows where the reference's top-1 probability >= CONFIDENT;
    not judged when there are none)."""
    misses = []
    if "shape_mismatch" in m:
        return False, [f"shape {m['shape_mismatch'][1]} != {m['shape_mismatch'][0]}"]
    if not m.get("finite", True):
        misses.append("non-finite values")
    if "atol" in budget and not m["max_abs"] <= budget["atol"]:
        misses.append(f"max_abs {m['max_abs']:.3g} > atol {budget['atol']:.3g}")
    if "atol_scaled" in budget and not m.get("max_abs_scaled", m["max_abs"]) <= budget["atol_scaled"]:
        misses.append(f"max_abs {m['max_abs']:.3g} > atol_scaled {budget['atol_scaled']:.3g} x output scale "
                      f"{max(1.0, m.get('ref_max', 1.0)):.3g}")
    if "rtol" in budget and not m["max_rel"] <= budget["rtol"]:
        misses.append(f"max_rel {m['max_rel']:.3g} > rtol {budget['rtol']:.3g}")
    if "cosine" in budget and not m["cosine"] >= budget["cosine"]:
        misses.append(f"cosine {m['cosine']:.6f} < {budget['cosine']}")
    if "snr_db" in budget and not m["snr_db"] >= budget["snr_db"]:
        misses.append(f"snr {m['snr_db']:.1f} dB < {budget['snr_db']}")
    if "top1" in budget and m.get("top1") is not None and not m["top1"] >= budget["top1"]:
        misses.append(f"top1 {m['top1']:.3f} < {budget['top1']}")
    if "top1_confident" in budget and m.get("top1_confident") is not None and \
            not m["top1_confident"] >= budget["top1_confident"]:
        misses.append(f"top1 where the reference is confident {m['top1_confident']:.3f} "
                      f"< {budget['top1_confident']} ({m.get('confident_rows')} rows)")
    return not misses, misses
