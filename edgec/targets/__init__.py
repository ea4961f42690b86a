"""Target profiles: named, declarative descriptions of where a model will run.

The profiles are YAML data files in the top-level ``targets/`` folder (shipped in the wheel as
``edgec.profiles``). A user's own profile file can be passed wherever a target name goes.
Every profile is validated on load; a bad one is refused with the field named.
"""

from __future__ import annotations

import os
from dataclasses import dataclass, field
from importlib import resources
from pathlib import Path
from typing import Any

from edgec.errors import TargetError

VARIANTS = ("fp32", "fp16", "dynamic_int8", "int8", "int16x8")
RUNTIMES = ("tflite", "onnxruntime")
DELEGATES = ("xnnpack", "gpu", "nnapi", "none", "cpu", "cuda")
PARITY_KEYS = ("atol", "atol_scaled", "rtol", "cosine", "top1", "top1_confident", "snr_db")  # see edgec/validate/compare.py


@dataclass(frozen=True)
class Device:
    name: str
    cpu: str
    isa: str
    fp16_arithmetic: bool
    cores: int


@dataclass(frozen=True)
class Runtime:
    name: str
    delegate: str
    threads: int
    on_device: str
    on_device_package: str = ""   # pip distribution the device runs (e.g. tflite-runtime), if any
    on_device_version: str = ""   # TFLite runtime version in TF numbering, for op-version checks


@dataclass(frozen=True)
class TargetProfile:
    name: str
    description: str
    device: Device
    runtime: Runtime
    variants: tuple[str, ...]
    layout: str = "nhwc"
    parity: dict[str, dict[str, float]] = field(default_factory=dict)
    source: str = ""  # the file it was loaded from
    budgets: dict[str, float] = field(default_factory=dict)           # latency_ms, size_mb
    delegate_constraints: dict[str, Any] = field(default_factory=dict)  # ops allow-list, rank/shape limits
    reference: dict[str, Any] = field(default_factory=dict)           # published numbers the estimate uses

    @property
    def is_host(self) -> bool:
        """True when the profile describes this machine (measured here, never estimated)."""
        return self.device.isa == "host"

    def threads_here(self) -> int:
        """Threads to use on this machine: the profile's, capped at the host's cores (0 = all)."""
        host = os.cpu_count() or 1
        return host if self.runtime.threads <= 0 else min(self.runtime.threads, host)

    def to_dict(self) -> dict:
        from dataclasses import asdict

        d = asdict(self)
        d["variants"] = list(self.variants)
        return d


# -- schema ---------------------------------------------------------------------------------------

_SCHEMA: dict[str, Any] = {
    "name": str,
    "description": str,
    "alias_of": str,
    "device": {"name": str, "cpu": str, "isa": str, "fp16_arithmetic": bool, "cores": int},
    "runtime": {"name": str, "delegate": str, "threads": int, "on_device": str, "on_device_package": str,
                "on_device_version": str},
    "layout": str,
    "variants": list,
    "parity": dict,
    "budgets": {"latency_ms": (int, float), "size_mb": (int, float)},
    "delegate_constraints": {"source": str, "ops": list, "max_versions": dict, "max_rank": int, "max_batch": int,
                             "dtypes": list, "hybrid": bool},
    "reference": {"device": str, "runtime": str, "threads": int, "note": str, "proxy": bool,
                  "measurements": list},
}
_REQUIRED = ("name", "description", "device", "runtime", "variants")
# Required keys of the nested sections (the rest are optional).
_NESTED_REQUIRED = {"runtime": ("name", "delegate", "threads", "on_device"), "budgets": (),
                    "delegate_constraints": ("source", "ops"), "reference": ("device", "runtime")}


def _check(where: str, data: Any, schema: dict, path: str) -> None:
    if not isinstance(data, dict):
        raise TargetError(f"field '{path or '(top level)'}' must be a mapping, got {type(data).__name__}",
                          where=where, hint="see targets/rpi4.yaml for the schema")
    for key, value in data.items():
        fq = f"{path}.{key}" if path else key
        if key not in schema:
            raise TargetError(f"unknown field '{fq}'", where=where,
                              hint=f"allowed here: {', '.join(schema)}")
        expected = schema[key]
        if isinstance(expected, dict):
            _check(where, value, expected, fq)
            missing = [k for k in _NESTED_REQUIRED.get(fq, expected) if k not in value]
            if missing:
                raise TargetError(f"field '{fq}' lacks {', '.join(missing)}", where=where,
                                  hint="see targets/rpi4.yaml for the schema")
        elif expected is int and (not isinstance(value, int) or isinstance(value, bool)):
            raise TargetError(f"field '{fq}' must be an integer, got {value!r}", where=where)
        elif expected == (int, float) and (not isinstance(value, expected) or isinstance(value, bool)):
            raise TargetError(f"field '{fq}' must be a number, got {value!r}", where=where)
        elif not isinstance(value, expected):
            raise TargetError(f"field '{fq}' must be {expected.__name__}, got {value!r}", where=where)


def validate_profile(data: Any, where: str) -> TargetProfile:
    _check(where, data, _SCHEMA, "")
    missing = [k for k in _REQUIRED if k not in data]
    if missing:
        raise TargetError(f"missing field(s) {', '.join(missing)}", where=where,
                          hint="see targets/rpi4.yaml for the schema")
    rt = data["runtime"]
    if rt["name"] not in RUNTIMES:
        raise TargetError(f"field 'runtime.name' is '{rt['name']}', expected one of {', '.join(RUNTIMES)}",
                          where=where)
    if rt["delegate"] not in DELEGATES:
        raise TargetError(f"field 'runtime.delegate' is '{rt['delegate']}', expected one of "
                          f"{', '.join(DELEGATES)}", where=where)
    for v in data["variants"]:
        if v not in VARIANTS:
            raise TargetError(f"field 'variants' names unknown variant '{v}'", where=where,
                              hint=f"known variants: {', '.join(VARIANTS)}")
    if data.get("layout", "nhwc") not in ("nhwc", "nchw"):
        raise TargetError(f"field 'layout' must be nhwc or nchw, got {data['layout']!r}", where=where)
    for variant, budget in data.get("parity", {}).items():
        if variant not in VARIANTS:
            raise TargetError(f"field 'parity.{variant}' is not a known variant", where=where)
        if not isinstance(budget, dict):
            raise TargetError(f"field 'parity.{variant}' must be a mapping", where=where)
        for k, v in budget.items():
            if k not in PARITY_KEYS:
                raise TargetError(f"unknown field 'parity.{variant}.{k}'", where=where,
                                  hint=f"allowed: {', '.join(PARITY_KEYS)}")
            if not isinstance(v, (int, float)) or isinstance(v, bool):
                raise TargetError(f"field 'parity.{variant}.{k}' must be a number, got {v!r}", where=where)
    from edgec.targets.sections import check_sections

    check_sections(data, where)
    return TargetProfile(
        name=data["name"], description=data["description"],
        device=Device(**data["device"]), runtime=Runtime(**rt),
        variants=tuple(data["variants"]), layout=data.get("layout", "nhwc"),
        parity={k: {kk: float(vv) for kk, vv in v.items()} for k, v in data.get("parity", {}).items()},
        source=where, budgets=dict(data.get("budgets", {})),
        delegate_constraints=dict(data.get("delegate_constraints", {})), reference=dict(data.get("reference", {})),
    )


# -- loading --------------------------------------------------------------------------------------

def _profiles_dir():
    return resources.files("edgec.profiles")


def _read_yaml(text: str, where: str) -> Any:
    import yaml

    try:
        return yaml.safe_load(text)
    except yaml.YAMLError as exc:
        raise TargetError(f"not valid YAML ({str(exc).splitlines()[0]})", where=where) from exc


def builtin_names() -> list[str]:
    return sorted(p.name[:-5] for p in _profiles_dir().iterdir() if p.name.endswith(".yaml"))


def _raw_profile(name_or_path: str) -> tuple[dict, str]:
    looks_like_path = any(s in name_or_path for s in ("/", os.sep)) or name_or_path.endswith((".yaml", ".yml"))
    if looks_like_path:
        p = Path(name_or_path)
        if not p.is_file():
            raise TargetError("target profile file not found", where=str(p),
                              hint="pass a built-in name (see `edgec targets`) or an existing YAML file")
        return _read_yaml(p.read_text(), str(p)), str(p)
    res = _profiles_dir() / f"{name_or_path}.yaml"
    if not res.is_file():
        raise TargetError(f"unknown target '{name_or_path}'",
                          hint=f"known targets: {', '.join(builtin_names())}; or pass a profile file path")
    return _read_yaml(res.read_text(), f"targets/{name_or_path}.yaml"), f"targets/{name_or_path}.yaml"


def load_target(name_or_path: str) -> TargetProfile:
    data, where = _raw_profile(name_or_path)
    if isinstance(data, dict) and "alias_of" in data:
        _check(where, data, _SCHEMA, "")
        target = load_target(data["alias_of"])
        return target
    return validate_profile(data, where)


def list_targets() -> list[dict]:
    rows = []
    for name in builtin_names():
        data, where = _raw_profile(name)
        if isinstance(data, dict) and "alias_of" in data:
            rows.append({"name": name, "alias_of": data["alias_of"], "description": data.get("description", "")})
            continue
        t = validate_profile(data, where)
        rows.append({"name": t.name, "description": t.description, "runtime": t.runtime.name,
                     "delegate": t.runtime.delegate, "threads": t.runtime.threads,
                     "variants": list(t.variants)})
    return rows
