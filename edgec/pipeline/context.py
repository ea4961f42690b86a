"""What a build's steps may read: the typed context handed from step to step.

The pipeline (``edgec.pipeline.build``) makes one ``BuildContext`` per build and passes it to every
step: conversion steps (``steps``), the route search (``search``), the parity ledger
(``edgec.validate.ledger``), the bench step, the bundle and the manifest. The steps read the
configuration, the target, the cache and the progress display from it, and record the few things
the later steps need (the steps run so far, the constant inputs, the source's input order, the
shapes the canonical ONNX resolved).
"""

from __future__ import annotations

from dataclasses import dataclass, field
from pathlib import Path
from typing import TYPE_CHECKING, Any

if TYPE_CHECKING:
    from edgec.data.calibration import BuildData
    from edgec.pipeline.cache import Cache
    from edgec.pipeline.config import BuildConfig
    from edgec.pipeline.progress import Progress
    from edgec.targets import TargetProfile


@dataclass
class BuildContext:
    cfg: BuildConfig
    target: TargetProfile
    variants: tuple[str, ...]
    out: Path
    cache: Cache
    progress: Progress
    settings: dict[str, Any] = field(default_factory=dict)  # what keys the conversion steps (cfg's share)
    steps: list[dict] = field(default_factory=list)          # the manifest's ``steps``, in order
    constants: dict[str, Any] = field(default_factory=dict)  # ONNX inputs fixed by --input-value (source run only)
    source_input_order: list[str] = field(default_factory=list)
    static_outputs: dict = field(default_factory=dict)       # {sha256, outputs}: shapes the canonical ONNX resolved
    data: BuildData | None = None                            # calibration and validation data (edgec.data)
    not_feasible: list[dict] = field(default_factory=list)   # routes the source cannot take, and why
    final_ledger: bool = False                               # the chosen route's ledger (device rows go here only)
    left_out: list[dict] = field(default_factory=list)       # profile defaults not built, and why
    compared_routes: list[tuple] = field(default_factory=list)  # --compare-routes: every passing route
    other_routes: list[tuple] = field(default_factory=list)

    @classmethod
    def for_config(cls, cfg: BuildConfig, target: TargetProfile, variants: tuple[str, ...], out: Path,
                   cache: Cache, progress: Progress) -> BuildContext:
        settings = {"exporter": cfg.exporter, "opset": cfg.opset, "keep_layout": cfg.keep_layout,
                    "input_shapes": {k: list(v) for k, v in cfg.input_shapes.items()},
                    "input_dtypes": dict(cfg.input_dtypes), "onnx2tf": None}
        return cls(cfg, target, variants, out, cache, progress, settings)


@dataclass
class BuildResult:
    out: Path
    manifest: dict
    steps: list[dict] = field(default_factory=list)

    @property
    def ok(self) -> bool:
        return self.manifest.get("parity", {}).get("ok", True)
