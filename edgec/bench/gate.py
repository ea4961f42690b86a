"""The CI gate: compare a bench record with a stored baseline, noise-aware.

``--fail-on p50:+10%`` fails when the current p50 exceeds the baseline's by more than 10 % *plus* a
noise margin: ``z`` standard errors of the difference, each run's standard error taken from the
spread of its block medians (``stats.median_se``), so a run disturbed by other load on the machine
gets a wider bound instead of a false alarm, and a quiet run a tight one.

A gate cannot pass on nothing: when the baseline or the current run has no measurement (a record
marked unavailable, a manifest built with ``--no-bench``, a variant the baseline never measured),
the verdict is ``unmeasured`` and ``ok`` is false; ``edgec bench`` exits 12 for it unless
``--allow-unmeasured`` is given.
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
    """A bench record from ``edgec bench --json`` output, or the variant's record in a manifest.json.

    A manifest without a measurement of ``variant`` gives an unavailable record saying so (the gate
    then reports ``unmeasured``); a file that is no bench record at all is an input error."""
    p = Path(path)
    try:
        data = json.loads(p.read_text())
    except FileNotFoundError:
        raise InputError("baseline file not found", where=str(p), hint="write one with edgec bench ... --json") from None
    except ValueError as exc:
        raise InputError(f"baseline is not JSON ({exc})", where=str(p)) from exc
    if isinstance(data, dict) and "edgec_version" in data and "steps" in data:  # a build's manifest.json
        per = data.get("bench") or {}
        if variant not in per:
            why = (f"{p.name} has no bench record for variant {variant!r} (it has {', '.join(per)})" if per else
                   f"{p.name} has no bench section (the build ran with --no-bench)")
            return {"available": False, "p50_ms": None, "reason": why}
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


def _unmeasured(rec: dict, key: str) -> str | None:
    """Why a record has no value to gate on, or None when it has one."""
    if not rec.get("available", True) or rec.get(key) is None:
        return rec.get("reason") or f"no {key}"
    return None


def compare(base: dict, cur: dict, spec: str, z: float = Z, allow_unmeasured: bool = False) -> dict:
    """The gate's verdict: ``regression``, ``improvement``, ``within bound``, or ``unmeasured`` when
    either side has no value for the metric (not ok, unless ``allow_unmeasured``)."""
    metric, tol = parse_fail_on(spec)
    key = f"{metric}_ms"
    missing = {side: why for side, why in (("baseline", _unmeasured(base, key)), ("current", _unmeasured(cur, key)))
               if why}
    if missing:
        reason = "; ".join(f"{side}: {why}" for side, why in missing.items())
        return {"metric": metric, "tolerance_pct": round(100 * tol, 2), "verdict": "unmeasured",
                "ok": allow_unmeasured, "allowed": allow_unmeasured, "unmeasured": sorted(missing),
                "reason": f"nothing to compare ({reason})"}
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


SLOWER_TOLERANCE = 0.10   # a variant within 10 % of fp32 (plus the runs' noise) is not called slower


def slower_than_reference(bench: dict, reference: str = "fp32", tolerance: float = SLOWER_TOLERANCE) -> list[dict]:
    """The variants of a build's ``bench`` section that run measurably slower than ``reference``: the
    same noise-aware test as the gate (p50 beyond the reference's by ``tolerance`` plus the noise
    margin), here and, where both were measured on a ``--device`` board, there."""
    ref = bench.get(reference) or {}
    spec = f"p50:+{100 * tolerance:g}%"
    found = []
    for where, pick in (("here", lambda r: r), ("on the device", lambda r: r.get("device") or {})):
        base = pick(ref)
        if not base or not base.get("available", True) or not base.get("p50_ms"):
            continue
        for variant, rec in bench.items():
            cur = pick(rec)
            if variant == reference or not cur or not cur.get("available", True) or cur.get("p50_ms") is None:
                continue
            g = compare(base, cur, spec)
            if g["verdict"] == "regression":
                found.append({"variant": variant, "reference": reference,
                              "ratio": round(cur["p50_ms"] / base["p50_ms"], 2), "p50_ms": cur["p50_ms"],
                              "reference_p50_ms": base["p50_ms"],
                              "where": "here" if where == "here" else f"on {cur.get('measured_on') or 'the device'}"})
    return found


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
    if g and g.get("verdict") == "unmeasured":
        mark = "⚠️ allowed (--allow-unmeasured)" if g.get("allowed") else "❌ fails"
        lines += ["", f"**Gate {g['metric']}:+{g['tolerance_pct']:g}%: UNMEASURED**, {mark}: {g['reason']}."]
    elif g and g.get("verdict") != "skipped":
        mark = "❌ regression" if not g["ok"] else "✅ " + g["verdict"]
        lines += ["", "| gate | baseline ms | current ms | change | bound ms (tolerance + noise) | verdict |",
                  "|---|---|---|---|---|---|",
                  f"| {g['metric']}:+{g['tolerance_pct']:g}% | {g['baseline_ms']:.3f} | {g['current_ms']:.3f} | "
                  f"{g['change_pct']:+.1f}% | {g['bound_ms']:.3f} (noise {g['noise_margin_ms']:.3f}) | {mark} |"]
        if g["differences"]:
            lines.append("\nConditions that differ from the baseline: " + "; ".join(g["differences"]))
    return "\n".join(lines) + "\n"
