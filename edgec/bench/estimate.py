"""Estimated latency on a device that is not at hand: a per-op-class cost model fitted on published
reference measurements, with a band from leave-one-out residuals. Always labelled ``estimated``.

The model, per runtime class (CPU, GPU delegate, NNAPI)::

    latency = overhead + (dense MACs + alpha[p] * depthwise MACs + beta * bytes moved) / throughput[group]

``group`` is one (device, runtime, precision, threads) of the reference table: its throughput is
fitted per group; ``overhead`` (ms), ``alpha`` (depthwise MACs cost more than dense ones: little
reuse; one value for float, one for int8 kernels, ``p``) and ``beta`` (cost of a byte moved, in MAC
equivalents) are shared by the class. For given alphas and beta the rest is a linear least-squares
fit of relative error; alphas and beta come from a grid.

Its accuracy is measured only out of sample, two ways. Leave-one-out: every fitted reference row is
predicted by a fit made without it; the residuals (log of published / predicted) give the band of
every estimate of that class. Held out: the rows of the table marked ``split=holdout`` are never
fitted; they are predicted by the shipped fit (``holdout_report``; tests/test_estimate.py).
"""

from __future__ import annotations

import functools
import math
from dataclasses import dataclass

import numpy as np

from edgec.bench.estimate_refs import RefRow, load_table, reference_ops
from edgec.formats.opgraph import Features, features

ALPHAS = (1.0, 1.5, 2.0, 3.0, 4.0, 6.0, 8.0, 12.0, 16.0)
BETAS = (0.0, 0.25, 0.5, 1.0, 2.0, 4.0, 8.0)       # MMACs per MB moved


def runtime_class(runtime: str) -> str:
    r = runtime.lower()
    return "gpu" if "gpu" in r else "nnapi" if "nnapi" in r else "cpu"


def group_of(row: RefRow) -> tuple:
    return (row.device, row.runtime, row.precision, row.threads)


@functools.lru_cache(maxsize=None)
def _ref_features(model: str, precision: str) -> Features:
    return features(list(reference_ops(model, precision)))


def _work(f: Features, alpha: tuple, beta: float, precision: str) -> float:
    """Work in millions of dense-MAC equivalents."""
    a = alpha[1] if precision == "int8" else alpha[0]
    return (f.dense_macs + a * f.dw_macs + beta * f.bytes) / 1e6


def _design(rows, alpha, beta, groups):
    """Rows of the relative-error system: columns [overhead, 1/theta_g ...], all divided by t."""
    a = np.zeros((len(rows), 1 + len(groups)))
    for i, r in enumerate(rows):
        work = _work(_ref_features(r.model, r.precision), alpha, beta, r.precision)
        a[i, 0] = 1.0
        a[i, 1 + groups.index(group_of(r))] = work
    t = np.array([r.latency_ms for r in rows])
    return a / t[:, None], np.ones(len(rows))


@dataclass
class Fit:
    alpha: tuple                  # (float kernels, int8 kernels)
    beta: float
    overhead_ms: float
    inv_throughput: dict          # group -> ms per MMAC of work
    rms_rel: float

    def predict(self, f: Features, group: tuple) -> float:
        return self.overhead_ms + _work(f, self.alpha, self.beta, group[2]) * self.inv_throughput[group]


def _solve(rows, alpha, beta) -> Fit | None:
    groups = sorted({group_of(r) for r in rows}, key=str)
    a, b = _design(rows, alpha, beta, groups)
    x = np.linalg.lstsq(a, b, rcond=None)[0]
    if x[0] < 0:  # no negative overhead: refit without it
        x = np.concatenate([[0.0], np.linalg.lstsq(a[:, 1:], b, rcond=None)[0]])
    if np.any(x[1:] <= 0):
        return None
    rms = float(np.sqrt(np.mean((a @ x - b) ** 2)))
    return Fit(alpha, beta, float(x[0]), {g: float(v) for g, v in zip(groups, x[1:])}, rms)


def fit(rows: tuple[RefRow, ...]) -> Fit:
    """The best grid point by relative RMS error (ties go to the simpler, smaller alpha/beta)."""
    best = None
    int8_alphas = ALPHAS if any(r.precision == "int8" for r in rows) else (1.0,)
    for alpha in ((a, b) for a in ALPHAS for b in int8_alphas):
        for beta in BETAS:
            f = _solve(rows, alpha, beta)
            if f is not None and (best is None or f.rms_rel < best.rms_rel - 1e-9):
                best = f
    if best is None:
        raise ValueError("no feasible fit of the reference rows")
    return best


def leave_one_out(rows: tuple[RefRow, ...]) -> list[dict]:
    """Each row predicted by a fit without it; rows that are the only one of their group are skipped."""
    out = []
    for i, r in enumerate(rows):
        rest = rows[:i] + rows[i + 1:]
        if not any(group_of(x) == group_of(r) for x in rest):
            out.append({**_row_id(r), "predicted_ms": None, "error_pct": None,
                        "note": "the only reference of its device/runtime/precision: not predictable"})
            continue
        try:
            pred = fit(rest).predict(_ref_features(r.model, r.precision), group_of(r))
        except ValueError:  # without this row no grid point gives every group a positive throughput
            out.append({**_row_id(r), "predicted_ms": None, "error_pct": None,
                        "note": "no feasible fit of the other rows: not predictable"})
            continue
        out.append({**_row_id(r), "predicted_ms": round(pred, 2), "error_pct": round(100 * (pred / r.latency_ms - 1), 1),
                    "log_residual": math.log(r.latency_ms / pred)})
    return out


def _row_id(r: RefRow) -> dict:
    return {"model": r.model, "device": r.device, "runtime": r.runtime, "precision": r.precision,
            "threads": r.threads, "published_ms": r.latency_ms, "source": r.source}


@functools.lru_cache(maxsize=16)
def fitted_class(rows: tuple[RefRow, ...], cls: str) -> tuple[Fit, list[dict]]:
    mine = tuple(r for r in rows if runtime_class(r.runtime) == cls)
    return fit(mine), leave_one_out(mine)


def all_rows(target=None) -> tuple[RefRow, ...]:
    """The shipped table plus the profile's own measurements (each with its source)."""
    rows = list(load_table())
    ref = getattr(target, "reference", None) or {}
    for m in ref.get("measurements", []):
        rows.append(RefRow(m["model"], ref["device"], ref["runtime"], m["precision"], m.get("threads", ref.get("threads")),
                           float(m["latency_ms"]), None, m.get("conditions", ""), m["source"]))
    return tuple(rows)


def _errors(rows: list[dict]) -> dict:
    errs = [abs(x["error_pct"]) for x in rows if x["error_pct"] is not None]
    return {"predicted": len(errs), "median_abs_error_pct": round(float(np.median(errs)), 1) if errs else None,
            "max_abs_error_pct": round(float(np.max(errs)), 1) if errs else None}


def loo_report(target=None) -> dict:
    """Out-of-sample errors of every runtime class, for printing (`edgec estimate --loo`): leave-one-out
    over the fitted rows, and the held-out rows predicted by the fit that never saw them."""
    rows = all_rows(target)
    held = holdout_report(target)
    report = {}
    for cls in sorted({runtime_class(r.runtime) for r in rows}):
        f, loo = fitted_class(rows, cls)
        report[cls] = {"rows": loo, "fit": _fit_dict(f), **_errors(loo), "holdout": held.get(cls)}
    return report


def holdout_report(target=None) -> dict:
    """Each ``split=holdout`` row of the table predicted by its class's fit (which never saw it), with
    the leave-one-out band that fit gives: per class, the rows and their median and worst error."""
    rows = all_rows(target)
    report: dict = {}
    for r in load_table("holdout"):
        cls = runtime_class(r.runtime)
        the_fit, loo = fitted_class(rows, cls)
        rec = {**_row_id(r), "predicted_ms": None, "error_pct": None}
        if group_of(r) not in the_fit.inv_throughput:
            rec["note"] = "no fitted row of its device/runtime/precision/threads: not predictable"
        else:
            pred = the_fit.predict(_ref_features(r.model, r.precision), group_of(r))
            lo, hi, _ = _band(loo, r.precision)
            rec.update(predicted_ms=round(pred, 2), error_pct=round(100 * (pred / r.latency_ms - 1), 1),
                       low_ms=round(pred * math.exp(lo), 2), high_ms=round(pred * math.exp(hi), 2),
                       in_band=pred * math.exp(lo) <= r.latency_ms <= pred * math.exp(hi))
        report.setdefault(cls, {"rows": []})["rows"].append(rec)
    for rep in report.values():
        rep.update(_errors(rep["rows"]), in_band=sum(1 for x in rep["rows"] if x.get("in_band")))
    return report


def _fit_dict(f: Fit) -> dict:
    return {"alpha_depthwise_float": f.alpha[0], "alpha_depthwise_int8": f.alpha[1], "beta_mmacs_per_mb": f.beta, "overhead_ms": round(f.overhead_ms, 3),
            "rms_relative_error": round(f.rms_rel, 4)}


# -- estimating an artifact for a target ------------------------------------------------------

def precision_basis(variant: str, cls: str) -> tuple[str, list[str], bool]:
    """(reference precision, notes, extrapolated) for a build variant on a runtime class."""
    if variant == "fp32":
        return "fp32", [], False
    if variant == "fp16":
        if cls == "gpu":
            return "fp16", ["fp16 on the GPU delegate (precision loss allowed)"], False
        return "fp32", ["fp16 weights are dequantized to float32 when the model loads: estimated as fp32"], False
    if variant in ("int8", "int16x8"):
        return "int8", ([] if variant == "int8" else ["int16x8 has no reference: int8 basis"]), variant != "int8"
    return "fp32", [f"{variant}: no published reference for dynamic-range kernels; fp32 basis, indicative only"], True


def _band(loo: list[dict], basis: str) -> tuple[float, float, int]:
    fam = [x["log_residual"] for x in loo if "log_residual" in x and (x["precision"] == "int8") == (basis == "int8")]
    if len(fam) < 3:
        fam = [x["log_residual"] for x in loo if "log_residual" in x]
    if not fam:
        return 0.0, 0.0, 0
    return min(0.0, min(fam)), max(0.0, max(fam)), len(fam)


def estimate(feats: Features, target, variant: str) -> dict:
    """The estimate for one artifact's features on ``target``'s reference device; always labelled."""
    ref = target.reference
    if not ref:
        return {"estimated": True, "available": False, "device": target.device.name, "p50_ms": None,
                "reason": f"profile {target.name} has no 'reference' section (no published numbers to fit)"}
    cls = runtime_class(ref["runtime"])
    basis, notes, extrapolated = precision_basis(variant, cls)
    group = (ref["device"], ref["runtime"], basis, ref.get("threads"))
    rows = all_rows(target)
    the_fit, loo = fitted_class(rows, cls)
    base = {"estimated": True, "device": ref["device"], "runtime": ref["runtime"], "threads": ref.get("threads"),
            "variant": variant, "precision_basis": basis}
    if group not in the_fit.inv_throughput:
        have = sorted({g[2] for g in the_fit.inv_throughput if g[:2] == group[:2]})
        return {**base, "available": False, "p50_ms": None,
                "reason": f"no {basis} reference for {ref['device']} / {ref['runtime']} (have: {', '.join(have) or 'none'})"}
    p50 = the_fit.predict(feats, group)
    lo, hi, n = _band(loo, basis)
    if ref.get("proxy"):
        notes = notes + [f"proxy device: {ref.get('note', 'the references are from a similar device')}"]
    return {**base, "available": True, "p50_ms": round(p50, 2), "low_ms": round(p50 * math.exp(lo), 2),
            "high_ms": round(p50 * math.exp(hi), 2), "extrapolated": extrapolated, "notes": notes,
            "band": f"leave-one-out residual range of {n} {cls} reference rows",
            "features": feats.to_dict(), "fit": _fit_dict(the_fit),
            "references": [_row_id(r) for r in rows if group_of(r) == group]}


def estimate_artifact(path, target, variant: str) -> dict:
    from edgec.formats.opgraph import read_op_costs

    return estimate(features(read_op_costs(path)), target, variant)
