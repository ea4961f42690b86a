"""Statistics of raw latency samples, from numpy. Milliseconds in, a flat dict out."""

from __future__ import annotations

import numpy as np


def summarize(samples_ms) -> dict:
    x = np.asarray(samples_ms, dtype=np.float64)
    if x.size == 0:
        raise ValueError("no samples")
    p50, p90, p99 = np.percentile(x, [50, 90, 99])
    mean = float(x.mean())
    std = float(x.std(ddof=1)) if x.size > 1 else 0.0
    return {"p50_ms": round(float(p50), 6), "p90_ms": round(float(p90), 6), "p99_ms": round(float(p99), 6),
            "mean_ms": round(mean, 6), "std_ms": round(std, 6), "cv": round(std / mean, 4) if mean else None,
            "min_ms": round(float(x.min()), 6), "max_ms": round(float(x.max()), 6), "runs": int(x.size),
            "p50_se_ms": round(median_se(x), 6)}


def median_se(x, blocks: int = 10) -> float:
    """Standard error of the median from consecutive blocks: the spread of block medians captures
    slow drift during the run (other load on the machine), not only sample-to-sample noise."""
    x = np.asarray(x, dtype=np.float64)
    k = min(blocks, x.size // 5)
    if k < 3:
        return float(1.2533 * x.std(ddof=1) / np.sqrt(x.size)) if x.size > 1 else 0.0
    meds = np.array([np.median(b) for b in np.array_split(x, k)])
    return float(meds.std(ddof=1) / np.sqrt(k))


MAX_KEPT = 10_000


def kept_samples(samples_ms: list[float]) -> tuple[list[float], str]:
    """The raw samples to store: all of them up to MAX_KEPT, else every k-th in order (the statistics
    are always computed from all)."""
    n = len(samples_ms)
    if n <= MAX_KEPT:
        return [round(s, 6) for s in samples_ms], f"all {n}"
    step = -(-n // MAX_KEPT)
    kept = samples_ms[::step][:MAX_KEPT]
    return [round(s, 6) for s in kept], f"every {step}th of {n} (in order)"
