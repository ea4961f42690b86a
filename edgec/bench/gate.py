"""The CI gate: compare a bench record with a stored baseline, noise-aware.

``--fail-on p50:+10%`` fails when the current p50 exceeds the baseline's by more than 10 % *plus* a
noise margin: ``z`` standard errors of the difference, each run's standard error taken from the
spread of its block medians (``stats.median_se``), so a run disturbed by other load on the machine
gets a wider bound instead of a false alarm, and a quiet run a tight one.
"""

from __future__ import annotations

import json
import math
import re
from pathlib import Path

import numpy as np

from edgec.errors import InputError, UsageError
from edgec.bench.stats import median_se

METRICS = {"p50": 50, "p90": 90, "p99": 99, "mean": None, "min": 0}
Z = 2.0   # one-sided, about 98 %


def parse_fail_on(spec: str) -> tuple[str, float]:
    m = re.fullmatch(r"\s*(p50|p90|p99|mean|min)\s*:\s*\+?\s*(\d+(?:\.\d+)?)\s*%\s*", spec or "")
    if not m:
        raise UsageError(f"--fail-on '{spec}' is not METRIC:+N%", hint="e.g. --fail-on p50:+10% "
                         f"(metrics: {', '.join(METRICS)})")
    return m.group(1), float(m.group(2)) / 100


def load_baseline(path: str, variant: str | None = None) -> dict:
    """A bench record from ``edgec bench --json`` output, or the variant's record in a manifest.json."""
    p = Path(path)
    try:
        data = json.loads(p.read_text())
    except FileNotFoundError:
        raise InputError("baseline file not found", where=str(p), hint="write one with edgec bench ... --json") from None
    except ValueError as exc:
        raise InputError(f"baseline is not JSON ({exc})", where=str(p)) from exc
    if isinstance(data, dict) and "bench" in data and "edgec_version" in data:
        per = data["bench"] or {}
        if variant not in per:
            raise InputError(f"the manifest has no bench record for variant {variant!r} (has {', '.join(per)})",
                             where=str(p))
        data = per[variant]
    if not isinstance(data, dict) or "p50_ms" not in data:
        raise InputError("baseline holds no bench record (no p50_ms)", where=str(p))
    return data


def _metric_se(rec: dict, metric: str) -> float:
    samples = rec.get("samples_ms")
    if not samples:
        return float(rec.get("p50_se_ms") or 0.0)
    x = np.asarray(samples, dtype=np.float64)
    if metric == "p50":
        return median_se(x)
    k = min(10, x.size // 10)
    if k < 3:
        return float(x.std(ddof=1)) if x.size > 1 else 0.0
    q = METRICS[metric]
    fn = (lambda b: b.mean()) if q is None else (lambda b: np.percentile(b, q))
    vals = np.array([fn(b) for b in np.array_split(x, k)])
    return float(vals.std(ddof=1) / math.sqrt(k))


def _differences(base: dict, cur: dict) -> list[str]:
    bc, cc = base.get("conditions", {}), cur.get("conditions", {})
    notes = []
    for key in ("runtime_version", "threads", "delegate", "input_source"):
        if bc.get(key) != cc.get(key):
            notes.append(f"{key}: {bc.get(key)} -> {cc.get(key)}")
    bm, cm = bc.get("machine", {}), cc.get("machine", {})
    for key in ("cpu", "cores"):
        if bm.get(key) != cm.get(key):
            notes.append(f"machine {key}: {bm.get(key)} -> {cm.get(key)}")
    if base.get("sha256") and base.get("sha256") != cur.get("sha256"):
        notes.append("a different artifact (sha256) than the baseline's")
    return notes


def compare(base: dict, cur: dict, spec: str, z: float = Z) -> dict:
    metric, tol = parse_fail_on(spec)
    key = f"{metric}_ms"
    if not cur.get("available", True) or cur.get(key) is None or base.get(key) is None:
        return {"metric": metric, "verdict": "skipped", "ok": True, "reason": cur.get("reason", "no measurement")}
    b, c = float(base[key]), float(cur[key])
    se_b, se_c = _metric_se(base, metric), _metric_se(cur, metric)
    margin = z * math.sqrt(se_b ** 2 + se_c ** 2)
    bound = b * (1 + tol) + margin
    if c > bound:
        verdict = "regression"
    elif c < b * (1 - tol) - margin:
        verdict = "improvement"
    else:
        verdict = "within bound"
    return {"metric": metric, "tolerance_pct": round(100 * tol, 2), "baseline_ms": round(b, 6), "current_ms": round(c, 6),
            "change_pct": round(100 * (c / b - 1), 2), "noise_margin_ms": round(margin, 6), "bound_ms": round(bound, 6),
            "se_ms": {"baseline": round(se_b, 6), "current": round(se_c, 6)}, "z": z, "verdict": verdict,
            "ok": verdict != "regression", "differences": _differences(base, cur)}


def markdown(record: dict) -> str:
    """A summary for a CI step summary (``$GITHUB_STEP_SUMMARY``)."""
    g = record.get("gate")
    lines = [f"### edgec bench: `{Path(record['artifact']).name}` ({record.get('variant')}) for `{record['target']}`", ""]
    if not record.get("available", True):
        lines.append(f"Not measured: {record.get('reason')}")
    else:
        c = record["conditions"]
        f = lambda k: "n/a" if record.get(k) is None else f"{record[k]:.3f}"  # noqa: E731 (benchmark_model: no p90/p99)
        lines += ["| p50 ms | p90 ms | p99 ms | mean ms | CV | min ms | runs |", "|---|---|---|---|---|---|---|",
                  f"| {f('p50_ms')} | {f('p90_ms')} | {f('p99_ms')} | {f('mean_ms')} "
                  f"| {100 * (record['cv'] or 0):.1f}% | {f('min_ms')} | {record['runs']} |", "",
                  f"Measured {'on ' + record['measured_on'] if record.get('measured_on') else 'here'}: {c['machine'].get('cpu')}, {c['machine'].get('cores')} cores, load "
                  f"{c['machine'].get('load_avg_1_5_15')}; {c['runtime']} {c['runtime_version']}, {c['delegate']}, "
                  f"{c['threads']} thread(s); inputs {c['input_source']}."]
    est = record.get("estimate")
    if est and est.get("p50_ms") is not None:
        lines += ["", f"**Estimated** on {est['device']}: p50 ≈ {est['p50_ms']} ms (band {est['low_ms']}–{est['high_ms']} ms)."]
    if g and g.get("verdict") != "skipped":
        mark = "❌ regression" if not g["ok"] else "✅ " + g["verdict"]
        lines += ["", "| gate | baseline ms | current ms | change | bound ms (tolerance + noise) | verdict |",
                  "|---|---|---|---|---|---|",
                  f"| {g['metric']}:+{g['tolerance_pct']:g}% | {g['baseline_ms']:.3f} | {g['current_ms']:.3f} | "
                  f"{g['change_pct']:+.1f}% | {g['bound_ms']:.3f} (noise {g['noise_margin_ms']:.3f}) | {mark} |"]
        if g["differences"]:
            lines.append("\nConditions that differ from the baseline: " + "; ".join(g["differences"]))
    return "\n".join(lines) + "\n"
