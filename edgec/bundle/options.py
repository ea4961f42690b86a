"""Bundle settings: one frozen object, from flags, a config file or a build's manifest (light: no
framework imports). ``BuildConfig.bundle`` holds one, so a saved build config replays its bundle.
The normalization the source model expects is not here: it is the build's own ``mean``/``std``
(the same values that preprocess its calibration and validation images)."""

from __future__ import annotations

from dataclasses import dataclass, fields, replace
from typing import Any

from edgec.errors import UsageError

TASKS = ("auto", "image_classifier", "generic")
IMAGE_INPUTS = ("auto", "float32", "uint8")
SCORE_TRANSFORMS = ("IDENTITY", "LOG", "INVERSE_LOGISTIC")


@dataclass(frozen=True)
class BundleOptions:
    enabled: bool | None = None              # None: Android targets bundle, others do not
    name: str | None = None                  # default: the source model's file or factory name
    description: str | None = None
    version: str | None = None
    author: str | None = None
    license: str | None = None
    labels: str | None = None                # a file with one class name per line
    task: str = "auto"                       # auto | image_classifier | generic
    image_input: str = "auto"                # auto: uint8 for full-integer variants, else float32
    score_calibration: str | None = None     # a file with one "scale,slope,offset[,min_score]" per class
    score_transformation: str = "IDENTITY"
    default_score: float = 0.0
    variants: tuple[str, ...] | None = None  # None: every TFLite variant of the build

    def __post_init__(self):
        for key, allowed in (("task", TASKS), ("image_input", IMAGE_INPUTS),
                             ("score_transformation", SCORE_TRANSFORMS)):
            if getattr(self, key) not in allowed:
                raise UsageError(f"'{getattr(self, key)}' is not one of {', '.join(allowed)}", where=f"bundle.{key}")

    def to_dict(self) -> dict[str, Any]:
        return {f.name: list(v) if isinstance(v := getattr(self, f.name), tuple) else v for f in fields(self)}

    @classmethod
    def from_dict(cls, d: dict[str, Any] | None, where: str = "bundle") -> "BundleOptions":
        d = dict(d or {})
        known = {f.name for f in fields(cls)}
        unknown = sorted(set(d) - known)
        if unknown:
            raise UsageError(f"unknown bundle field(s) {', '.join(unknown)}", where=where,
                             hint=f"allowed: {', '.join(sorted(known))}")
        if d.get("variants") is not None:
            d["variants"] = tuple(d["variants"])
        return cls(**d)

    def merged(self, **overrides) -> "BundleOptions":
        """These options with every override that is not None (flags over a config file)."""
        return replace(self, **{k: v for k, v in overrides.items() if v is not None})
