"""Validation of the profile sections that need more than a type check: delegate constraints,
latency/size budgets, the on-device runtime version and the reference measurements for estimates.

Every message names the field (``reference.measurements[1].source``) and the profile file.
"""

from __future__ import annotations

import re
from typing import Any

from edgec.errors import TargetError

PRECISIONS = ("fp32", "fp16", "int8")
TENSOR_TYPES = ("float32", "float16", "int8", "uint8", "int16", "int32", "int64", "bool")
_MEASUREMENT_KEYS = {"model": str, "precision": str, "latency_ms": (int, float), "source": str,
                     "threads": int, "conditions": str}
_MEASUREMENT_REQUIRED = ("model", "precision", "latency_ms", "source")


def _number(v: Any) -> bool:
    return isinstance(v, (int, float)) and not isinstance(v, bool)


def check_sections(data: dict, where: str) -> None:
    _check_runtime(data["runtime"], where)
    for key, value in data.get("budgets", {}).items():
        if not value > 0:
            raise TargetError(f"field 'budgets.{key}' must be positive, got {value!r}", where=where)
    if "delegate_constraints" in data:
        _check_constraints(data["delegate_constraints"], where)
    if "reference" in data:
        _check_reference(data["reference"], where)


def _check_runtime(rt: dict, where: str) -> None:
    v = rt.get("on_device_version")
    if v is not None and not re.fullmatch(r"\d+\.\d+(\.\d+)?", v):
        raise TargetError(f"field 'runtime.on_device_version' must look like 2.14.0, got {v!r}", where=where)


def _check_constraints(dc: dict, where: str) -> None:
    for i, op in enumerate(dc["ops"]):
        if not isinstance(op, str) or not re.fullmatch(r"[A-Z0-9_]+", op):
            raise TargetError(f"field 'delegate_constraints.ops[{i}]' must be a TFLite builtin op name such as "
                              f"CONV_2D, got {op!r}", where=where)
    for i, t in enumerate(dc.get("dtypes", [])):
        if t not in TENSOR_TYPES:
            raise TargetError(f"field 'delegate_constraints.dtypes[{i}]' is {t!r}, expected one of "
                              f"{', '.join(TENSOR_TYPES)}", where=where)
    for op, v in dc.get("max_versions", {}).items():
        if isinstance(v, bool) or not isinstance(v, int) or v < 1:
            raise TargetError(f"field 'delegate_constraints.max_versions.{op}' must be a positive integer, got {v!r}",
                              where=where)
    for key in ("max_rank", "max_batch"):
        if key in dc and dc[key] < 1:
            raise TargetError(f"field 'delegate_constraints.{key}' must be >= 1, got {dc[key]!r}", where=where)


def _check_reference(ref: dict, where: str) -> None:
    from edgec.targets.references import MODELS, reference_rows

    rows = ref.get("measurements", [])
    for i, row in enumerate(rows):
        _check_measurement(row, f"reference.measurements[{i}]", where, MODELS)
    if not rows and not reference_rows(ref["device"], ref["runtime"]):
        raise TargetError(f"field 'reference.device' / 'reference.runtime' ({ref['device']!r}, {ref['runtime']!r}) "
                          "matches no row of the reference table", where=where,
                          hint="use a device and runtime from targets/reference-latencies.csv, or add "
                               "reference.measurements with their source")


def _check_measurement(row: Any, fq: str, where: str, models) -> None:
    if not isinstance(row, dict):
        raise TargetError(f"field '{fq}' must be a mapping", where=where)
    for key, value in row.items():
        if key not in _MEASUREMENT_KEYS:
            raise TargetError(f"unknown field '{fq}.{key}'", where=where,
                              hint=f"allowed here: {', '.join(_MEASUREMENT_KEYS)}")
        ok = _number(value) if _MEASUREMENT_KEYS[key] == (int, float) else isinstance(value, _MEASUREMENT_KEYS[key])
        if not ok:
            raise TargetError(f"field '{fq}.{key}' has the wrong type ({value!r})", where=where)
    missing = [k for k in _MEASUREMENT_REQUIRED if k not in row]
    if missing:
        raise TargetError(f"field '{fq}' lacks {', '.join(missing)}", where=where,
                          hint="every reference measurement needs its source")
    if row["model"] not in models:
        raise TargetError(f"field '{fq}.model' is {row['model']!r}, not a model the estimator can describe",
                          where=where, hint=f"known: {', '.join(models)}")
    if row["precision"] not in PRECISIONS:
        raise TargetError(f"field '{fq}.precision' is {row['precision']!r}, expected one of {', '.join(PRECISIONS)}",
                          where=where)
    if not row["latency_ms"] > 0:
        raise TargetError(f"field '{fq}.latency_ms' must be positive", where=where)
