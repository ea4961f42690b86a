"""The comparator: per-output error metrics and a verdict against a budget.

A comparison returns numbers per output (never a bare bool): max/mean abs error, max relative
error, cosine similarity, SNR in dB, and top-1 agreement for classifier-like outputs.
"""

from __future__ import annotations

import math

import numpy as np

_EPS = 1e-12


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
                "finite": True}
    diff = np.abs(r - g)
    max_abs = float(np.max(diff)) if finite else math.inf
    mean_abs = float(np.mean(diff)) if finite else math.inf
    max_rel = float(np.max(diff / np.maximum(np.abs(r), _EPS))) if finite else math.inf
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
    signal = float(np.sum(r ** 2))
    if noise == 0.0:
        snr = math.inf
    elif not finite:
        snr = -math.inf
    else:
        snr = 10.0 * math.log10(max(signal, _EPS) / noise)
    out = {"max_abs": max_abs, "mean_abs": mean_abs, "max_rel": max_rel, "cosine": cosine, "snr_db": snr,
           "finite": finite}
    if ref.ndim >= 2 and ref.shape[-1] > 1 and ref.ndim <= 2:
        out["top1"] = float(np.mean(np.argmax(ref, -1) == np.argmax(got, -1)))
    return out


def merge(batches: list[dict]) -> dict:
    """Combine per-sample metrics: worst case for errors, mean for agreement."""
    if not batches:
        return {}
    out = {"max_abs": max(b["max_abs"] for b in batches), "mean_abs": float(np.mean([b["mean_abs"] for b in batches])),
           "max_rel": max(b["max_rel"] for b in batches), "cosine": min(b["cosine"] for b in batches),
           "snr_db": min(b["snr_db"] for b in batches), "finite": all(b.get("finite", True) for b in batches)}
    if all("top1" in b for b in batches):
        out["top1"] = float(np.mean([b["top1"] for b in batches]))
    if any("shape_mismatch" in b for b in batches):
        out["shape_mismatch"] = next(b["shape_mismatch"] for b in batches if "shape_mismatch" in b)
    return out


def verdict(m: dict, budget: dict) -> tuple[bool, list[str]]:
    """Does metric dict ``m`` meet ``budget`` (atol, rtol, cosine, top1, snr_db)? Returns (ok, misses)."""
    misses = []
    if "shape_mismatch" in m:
        return False, [f"shape {m['shape_mismatch'][1]} != {m['shape_mismatch'][0]}"]
    if not m.get("finite", True):
        misses.append("non-finite values")
    if "atol" in budget and not m["max_abs"] <= budget["atol"]:
        misses.append(f"max_abs {m['max_abs']:.3g} > atol {budget['atol']:.3g}")
    if "rtol" in budget and not m["max_rel"] <= budget["rtol"]:
        misses.append(f"max_rel {m['max_rel']:.3g} > rtol {budget['rtol']:.3g}")
    if "cosine" in budget and not m["cosine"] >= budget["cosine"]:
        misses.append(f"cosine {m['cosine']:.6f} < {budget['cosine']}")
    if "snr_db" in budget and not m["snr_db"] >= budget["snr_db"]:
        misses.append(f"snr {m['snr_db']:.1f} dB < {budget['snr_db']}")
    if "top1" in budget and "top1" in m and not m["top1"] >= budget["top1"]:
        misses.append(f"top1 {m['top1']:.3f} < {budget['top1']}")
    return not misses, misses
