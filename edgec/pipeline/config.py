"""One typed, frozen configuration object per command, built from flags or a saved file.

Precedence is explicit: CLI flag > config file > target profile > default. ``BuildConfig.to_dict``
is what ``--dry-run`` prints and what ``--config FILE`` reads back, so a saved config replays the
same build.
"""

from __future__ import annotations

import json
import re
from dataclasses import dataclass, field, fields, replace
from pathlib import Path
from typing import Any

from edgec.bundle.options import BundleOptions
from edgec.errors import UsageError

PARITY_MODES = ("fail", "warn")
EXPORTERS = ("auto", "dynamo", "legacy")


def parse_value(text: str) -> tuple[str, str]:
    """``sr=16000`` -> ("sr", "16000"); the value is checked against the input's dtype and shape once
    the model's inputs are known (``edgec.passes.canonicalize.parse_input_value``)."""
    name, sep, value = text.partition("=")
    if not sep or not name.strip() or not value.strip():
        raise UsageError(f"--input-value '{text}' is not NAME=VALUE", hint="e.g. --input-value sr=16000")
    return name.strip(), value.strip()


def split_dtype(text: str) -> tuple[str, str]:
    """``x=1x3x224x224:float32`` -> ("x=1x3x224x224", "float32"). Only a suffix after the shape is a
    dtype, so an input named like TF's ``serving_default_input_2:0`` keeps its colon."""
    spec, sep, tail = text.rpartition(":")
    if sep and "=" in spec and re.fullmatch(r"[a-z]+[0-9]*", tail or ""):
        return spec, tail
    return text, ""


def parse_shape(text: str) -> tuple[str, tuple[int, ...]]:
    """``name=1x3x224x224`` -> ("name", (1, 3, 224, 224))."""
    name, sep, dims = text.rpartition("=")
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
    input_values: dict[str, str] = field(default_factory=dict)  # ONNX config inputs fixed to a constant
    keep_layout: bool = False
    trust_pickle: bool = False
    exporter: str = "auto"
    opset: int | None = None
    cache_dir: str | None = None
    use_cache: bool = True
    parity: str = "fail"
    seed: int = 0
    # calibration (int8/int16x8) and validation (the parity ledger) data; see edgec/datasets.py
    calibration_data: str | None = None     # image folder, .npy/.npz, or package.module:function
    calibration_samples: int = 100
    synthetic_calibration: bool = False     # random calibration data: only on this explicit flag
    validation_data: str | None = None      # the same kinds; must not share samples with calibration
    validation_samples: int | None = None   # None: all given samples up to 500; 8 if synthetic
    synthetic_validation: bool = False      # random validation data: only on this explicit flag
    quant_io: str = "float"                 # the int8 variant's input/output type: float, int8, uint8
    image_resize: int | None = None         # images: shorter side resized to this, then center-cropped
    mean: tuple[float, ...] | None = None   # per channel, on [0, 1] pixels; None: ImageNet's (3 ch)
    std: tuple[float, ...] | None = None
    channel_order: str = "rgb"
    image_layout: str | None = None         # nchw or nhwc; None: from the input's shape
    parity_budgets: dict[str, dict[str, float]] = field(default_factory=dict)  # over the profile's
    bench: bool = True                      # measure every variant (cached per artifact and machine)
    compare_routes: bool = False            # build every feasible route and pick by the target's budget (routes.py)
    bundle: BundleOptions = field(default_factory=BundleOptions)  # the Android bundle; see edgec/bundler/
    device: dict | None = None              # measure (and with parity: true, validate) on a real device too

    def __post_init__(self):
        if self.parity not in PARITY_MODES:
            raise UsageError(f"parity mode '{self.parity}' is not one of {', '.join(PARITY_MODES)}")
        if self.exporter not in EXPORTERS:
            raise UsageError(f"exporter '{self.exporter}' is not one of {', '.join(EXPORTERS)}")
        if self.model is None and self.factory is None:
            raise UsageError("no model given", hint="pass a model file, or --factory package.module:function")
        if self.device is not None:  # --device / --parity-on-device (edgec/bench/devices.py)
            from edgec.bench.devices import check_spec

            check_spec(self.device, "device")
        _check_data_settings(self)

    def to_dict(self) -> dict[str, Any]:
        d = {}
        for f in fields(self):
            v = getattr(self, f.name)
            if isinstance(v, tuple):
                v = list(v)
            if f.name == "input_shapes":
                v = {k: list(s) for k, s in v.items()}
            if f.name == "bundle":
                v = v.to_dict()
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
        if d.get("input_values") is not None:
            d["input_values"] = {str(k): ",".join(map(str, v)) if isinstance(v, (list, tuple)) else str(v)
                                 for k, v in d["input_values"].items()}
        if "input_shapes" in d:
            d["input_shapes"] = {k: tuple(int(x) for x in v) for k, v in (d["input_shapes"] or {}).items()}
        for key in ("mean", "std"):
            if d.get(key) is not None:
                d[key] = tuple(d[key])
        if not isinstance(d.get("bundle", BundleOptions()), BundleOptions):
            d["bundle"] = BundleOptions.from_dict(d["bundle"], where=f"{where}: bundle")
        return cls(**d)

    def merged(self, **overrides) -> "BuildConfig":
        return replace(self, **{k: v for k, v in overrides.items() if v is not None})


QUANT_IO_TYPES = ("float", "int8", "uint8")


def _check_data_settings(cfg: "BuildConfig") -> None:
    from edgec.targets import PARITY_KEYS, VARIANTS

    if cfg.quant_io not in QUANT_IO_TYPES:
        raise UsageError(f"quant_io '{cfg.quant_io}' is not one of {', '.join(QUANT_IO_TYPES)}")
    if cfg.channel_order not in ("rgb", "bgr"):
        raise UsageError(f"channel order '{cfg.channel_order}' is not rgb or bgr")
    if cfg.image_layout not in (None, "nchw", "nhwc"):
        raise UsageError(f"image layout '{cfg.image_layout}' is not nchw or nhwc")
    for name in ("calibration_samples", "validation_samples"):
        if name == "validation_samples" and cfg.validation_samples is None:
            continue
        if not isinstance(getattr(cfg, name), int) or getattr(cfg, name) < 1:
            raise UsageError(f"{name} must be a positive integer, got {getattr(cfg, name)!r}")
    if cfg.image_resize is not None and (not isinstance(cfg.image_resize, int) or cfg.image_resize < 1):
        raise UsageError(f"image_resize must be a positive integer, got {cfg.image_resize!r}")
    if cfg.std is not None and any(v == 0 for v in cfg.std):
        raise UsageError("std values must be non-zero")
    for variant, budget in cfg.parity_budgets.items():
        if variant not in VARIANTS or not isinstance(budget, dict):
            raise UsageError(f"parity budget for unknown variant '{variant}'", hint=f"known: {', '.join(VARIANTS)}")
        bad = sorted(set(budget) - set(PARITY_KEYS))
        if bad:
            raise UsageError(f"unknown parity budget key(s) {', '.join(bad)} for {variant}",
                             hint=f"allowed: {', '.join(PARITY_KEYS)}")


def parse_budget(text: str) -> tuple[str, str, float]:
    """``int8.top1=0.9`` -> ("int8", "top1", 0.9)."""
    lhs, sep, value = text.partition("=")
    variant, dot, key = lhs.partition(".")
    try:
        number = float(value)
    except ValueError:
        number = None
    if not sep or not dot or number is None:
        raise UsageError(f"--budget '{text}' is not VARIANT.KEY=NUMBER", hint="e.g. --budget int8.top1=0.95")
    return variant, key, number


def parse_floats(text: str, what: str) -> tuple[float, ...]:
    try:
        return tuple(float(v) for v in text.split(",") if v.strip())
    except ValueError:
        raise UsageError(f"--{what} '{text}' is not a comma-separated list of numbers") from None


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


@dataclass(frozen=True)
class BenchConfig:
    """``edgec bench``: one artifact measured with a target profile's runtime (see ``edgec.bench``)."""

    artifact: str
    target: str = "desktop-cpu"
    threads: int | None = None          # None: the profile's, capped at this machine's cores
    variant: str | None = None          # None: read from the model (fp32, fp16, dynamic_int8, int8)
    warmup_s: float = 1.0
    min_runs: int = 50
    min_seconds: float = 5.0
    max_seconds: float = 120.0
    inputs: str | None = None           # an .npz of inputs by name; None: seeded synthetic inputs
    seed: int = 0
    compat: bool = True                 # check (and try loading with) the on-device runtime
    baseline: str | None = None         # a previous `edgec bench --json` (or a build's manifest.json)
    fail_on: str | None = None          # e.g. "p50:+10%"
    device: dict | None = None          # a real device: {"url": "ssh://..." | "adb://...", ...} (bench/devices.py)
    device_pool: str | None = None      # a devices.yaml: every board of the target (bench/pool.py)

    def __post_init__(self):
        if self.device is not None and self.device_pool:
            raise UsageError("--device and --device-pool go separately", hint="a pool names its boards itself")
        if self.device is not None:
            from edgec.bench.devices import check_spec

            check_spec(self.device)
        if self.threads is not None and self.threads < 1:
            raise UsageError(f"--threads must be >= 1, got {self.threads}")
        if self.min_runs < 1 or self.warmup_s < 0 or self.min_seconds < 0 or self.max_seconds <= 0:
            raise UsageError("bench settings must be positive (--min-runs >= 1, times >= 0)")
        if (self.baseline is None) != (self.fail_on is None):
            raise UsageError("--baseline and --fail-on go together", hint="e.g. --baseline base.json --fail-on p50:+10%")

    def to_dict(self) -> dict[str, Any]:
        return {f.name: getattr(self, f.name) for f in fields(self)}
