"""One typed, frozen configuration object per command, built from flags or a saved file.

Precedence is explicit: CLI flag > config file > target profile > default. ``BuildConfig.to_dict``
is what ``--dry-run`` prints and what ``--config FILE`` reads back, so a saved config replays the
same build.
"""

from __future__ import annotations

import json
from dataclasses import dataclass, field, fields, replace
from pathlib import Path
from typing import Any

from .errors import UsageError

PARITY_MODES = ("fail", "warn")
EXPORTERS = ("auto", "dynamo", "legacy")


def parse_shape(text: str) -> tuple[str, tuple[int, ...]]:
    """``name=1x3x224x224`` -> ("name", (1, 3, 224, 224))."""
    name, sep, dims = text.partition("=")
    if not sep or not name or not dims:
        raise UsageError(f"--input-shape '{text}' is not NAME=DxDxD", hint="e.g. --input-shape input=1x3x224x224")
    try:
        shape = tuple(int(d) for d in dims.lower().replace(",", "x").split("x"))
    except ValueError:
        raise UsageError(f"--input-shape '{text}': dims must be integers", hint="e.g. input=1x3x224x224") from None
    if any(d <= 0 for d in shape):
        raise UsageError(f"--input-shape '{text}': dims must be positive")
    return name, shape


@dataclass(frozen=True)
class BuildConfig:
    model: str | None = None
    target: str = "desktop-cpu"
    out: str = "edgec-out"
    factory: str | None = None
    route: tuple[str, ...] | None = None
    variants: tuple[str, ...] | None = None   # None: the target profile's variants
    input_shapes: dict[str, tuple[int, ...]] = field(default_factory=dict)
    input_dtypes: dict[str, str] = field(default_factory=dict)
    keep_layout: bool = False
    trust_pickle: bool = False
    exporter: str = "auto"
    opset: int | None = None
    cache_dir: str | None = None
    use_cache: bool = True
    parity: str = "fail"
    seed: int = 0

    def __post_init__(self):
        if self.parity not in PARITY_MODES:
            raise UsageError(f"parity mode '{self.parity}' is not one of {', '.join(PARITY_MODES)}")
        if self.exporter not in EXPORTERS:
            raise UsageError(f"exporter '{self.exporter}' is not one of {', '.join(EXPORTERS)}")
        if self.model is None and self.factory is None:
            raise UsageError("no model given", hint="pass a model file, or --factory package.module:function")

    def to_dict(self) -> dict[str, Any]:
        d = {}
        for f in fields(self):
            v = getattr(self, f.name)
            if isinstance(v, tuple):
                v = list(v)
            if f.name == "input_shapes":
                v = {k: list(s) for k, s in v.items()}
            d[f.name] = v
        return d

    @classmethod
    def from_dict(cls, d: dict[str, Any], where: str = "config") -> "BuildConfig":
        known = {f.name for f in fields(cls)}
        unknown = sorted(set(d) - known)
        if unknown:
            raise UsageError(f"unknown field(s) {', '.join(unknown)}", where=where,
                             hint=f"allowed: {', '.join(sorted(known))}")
        d = dict(d)
        for key in ("route", "variants"):
            if d.get(key) is not None:
                d[key] = tuple(d[key])
        if "input_shapes" in d:
            d["input_shapes"] = {k: tuple(int(x) for x in v) for k, v in (d["input_shapes"] or {}).items()}
        return cls(**d)

    def merged(self, **overrides) -> "BuildConfig":
        return replace(self, **{k: v for k, v in overrides.items() if v is not None})


def load_config_file(path: str) -> dict[str, Any]:
    p = Path(path)
    if not p.is_file():
        raise UsageError("config file not found", where=str(p))
    text = p.read_text()
    try:
        if p.suffix in (".yaml", ".yml"):
            import yaml

            data = yaml.safe_load(text)
        else:
            data = json.loads(text)
    except Exception as exc:
        raise UsageError(f"cannot parse config ({exc})", where=str(p)) from exc
    if not isinstance(data, dict):
        raise UsageError("config must be a mapping of build settings", where=str(p))
    return data.get("config", data) if "edgec_version" in data else data
