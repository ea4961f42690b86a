"""The Android-ready bundle: ``OUT/bundle/`` and ``OUT/bundle.zip`` from a build.

    edgec.make_bundle("out")                                   # re-create it from a finished build
    edgec.build(BuildConfig(..., target="android-arm64-cpu", bundle=BundleOptions(labels="labels.txt")))

Each model of the bundle is a build variant with the official TFLite metadata and its labels inside,
an image input that takes pixels (per-channel normalization folded into the model; uint8 for
full-integer variants) and float or uint8 class scores, checked against the variant it came from.
Nothing is written when a setting is refused; the bundle replaces an earlier one in one step.
"""

from __future__ import annotations

import os
import shutil
import uuid
from dataclasses import dataclass
from pathlib import Path

from edgec.errors import InputError
from edgec.fsio import replace_path
from edgec.bundle.options import BundleOptions
from edgec.bundle.plan import SourceNormalization, TensorPlan, check_classifier, is_image, resolve_task  # light: no numpy


def is_android(target) -> bool:
    """Android targets (by name or device) bundle by default."""
    name = f"{getattr(target, 'name', '')} {getattr(getattr(target, 'device', None), 'name', '')}"
    return "android" in name.lower()


def wants_bundle(opts: BundleOptions | None, target) -> bool:
    opts = opts or BundleOptions()
    return opts.enabled if opts.enabled is not None else is_android(target)


def source_normalization(config: dict, mean=None, std=None) -> SourceNormalization:
    """What the source expects: the flags' mean/std, else the build config's, else edgec's default."""
    if mean is not None or std is not None:
        return SourceNormalization(tuple(mean) if mean else None, tuple(std) if std else None, "flags")
    if config.get("mean") is not None or config.get("std") is not None:
        return SourceNormalization(config.get("mean"), config.get("std"), "build config")
    return SourceNormalization(None, None, "default")


def precheck(cfg, target, inputs) -> None:
    """The refusals that the source model's inputs already decide, before any conversion runs."""
    opts = getattr(cfg, "bundle", None) or BundleOptions()
    if not wants_bundle(opts, target):
        return
    if opts.labels and not Path(opts.labels).is_file():
        raise InputError("labels file not found", where=f"labels ({opts.labels})")
    plans = []
    for i, s in enumerate(inputs):
        image, ch = is_image(s.shape, "NCHW")
        if not image:
            image, ch = is_image(s.shape, None)
        plans.append(TensorPlan(i, s.name, s.name, tuple(s.shape), s.dtype, image, ch))
    norm = source_normalization(cfg.to_dict())
    for t in plans:
        if t.image:
            norm.per_channel(t.channels, t.source)
    if resolve_task(opts, [t for t in plans if t.image], len(plans), []) == "image_classifier":
        check_classifier(plans, {}, getattr(cfg, "channel_order", "rgb"))


def for_build(build, manifest: dict, tflites) -> "callable | None":
    """For ``pipeline.build``: a function that writes the bundle into the build's staging directory
    (and records it in the build manifest), or None when this build makes no bundle."""
    opts = getattr(build.cfg, "bundle", None) or BundleOptions()
    if not wants_bundle(opts, build.target):
        return None
    from edgec.bundle.make import make_bundle

    models = {a.variant: Path(a.path) for a in tflites if not opts.variants or a.variant in opts.variants}
    norm = source_normalization(manifest.get("config") or {})

    def write(staging: Path) -> None:
        bm = make_bundle(manifest, models, opts, norm, staging, threads=build.target.threads_here(),
                         parity_mode=build.cfg.parity)
        manifest["bundle"] = {"path": "bundle", "zip": "bundle.zip", "task": bm["task"],
                              "models": [m["file"] for m in bm["models"]],
                              "checks_ok": all(m["check"]["ok"] for m in bm["models"])}

    return write


@dataclass
class BundleResult:
    out: Path
    manifest: dict

    @property
    def ok(self) -> bool:
        return all(m["check"]["ok"] for m in self.manifest["models"])


def bundle(out, options: BundleOptions | None = None, *, mean=None, std=None, parity: str = "fail") -> BundleResult:
    """(Re-)create ``OUT/bundle/`` and ``OUT/bundle.zip`` from the finished build in ``out``.
    ``options`` default to the build's own; ``mean``/``std`` (per channel, pixels / 255) override
    the build config's normalization."""
    from edgec.formats.manifest import load_manifest
    from edgec.bundle.make import make_bundle

    out = Path(out)
    manifest = load_manifest(out)
    opts = options or BundleOptions.from_dict((manifest.get("config") or {}).get("bundle"), "manifest.json")
    models = _build_models(out, manifest, opts)
    norm = source_normalization(manifest.get("config") or {}, mean, std)
    runtime = (manifest.get("target") or {}).get("runtime") or {}
    threads = min(runtime.get("threads") or os.cpu_count() or 1, os.cpu_count() or 1)
    staging = out / f".bundle-{uuid.uuid4().hex[:8]}"
    staging.mkdir()
    try:
        bm = make_bundle(manifest, models, opts, norm, staging, threads=threads, parity_mode=parity)
        replace_path(staging / "bundle", out / "bundle")
        os.replace(staging / "bundle.zip", out / "bundle.zip")
    finally:
        shutil.rmtree(staging, ignore_errors=True)
    return BundleResult(out / "bundle", bm)


def _build_models(out: Path, manifest: dict, opts: BundleOptions) -> dict[str, Path]:
    from edgec.formats import digest

    arts = [a for a in manifest.get("artifacts") or [] if a.get("format") == "tflite"]
    if opts.variants:
        missing = sorted(set(opts.variants) - {a["variant"] for a in arts})
        if missing:
            raise InputError(f"the build has no variant(s) {', '.join(missing)}", where=str(out / "manifest.json"),
                             hint=f"built: {', '.join(a['variant'] for a in arts)}")
    models = {}
    for a in arts:
        if opts.variants and a["variant"] not in opts.variants:
            continue
        p = out / a["path"]
        if not p.is_file() or digest(p) != a["sha256"]:
            raise InputError("missing, or changed since the build (sha256 differs from the manifest)",
                             where=str(p), hint="rebuild, then bundle")
        models[a["variant"]] = p
    if not models:
        raise InputError("the build has no TFLite variants to bundle", where=str(out / "manifest.json"))
    return models


__all__ = ["BundleOptions", "BundleResult", "bundle", "for_build", "precheck", "wants_bundle"]
