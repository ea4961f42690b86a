"""The Android bundle on tiny models: files and their sha256, the zip, metadata in every model, uint8
input and float scores for full-integer variants, MediaPipe loading each model, ``edgec bundle OUT``
re-creating it, and the refusals (field named, nothing written)."""

from __future__ import annotations

import hashlib
import importlib.util
import json
import shutil
import subprocess
import sys
import zipfile
from pathlib import Path

import numpy as np
import pytest
import torch
from torch import nn

from edgec.cli.main import main

HAVE_MEDIAPIPE = importlib.util.find_spec("mediapipe") is not None
VARIANTS = ("fp32", "fp16", "dynamic_int8", "int8")
LABELS = [f"class {i}" for i in range(10)]
SYNTHETIC = ["--synthetic-validation", "--synthetic-calibration"]


class TwoImages(nn.Module):
    def __init__(self):
        super().__init__()
        self.conv = nn.Conv2d(6, 4, 3, padding=1)
        self.head = nn.Linear(4, 5)

    def forward(self, left, right):
        return self.head(self.conv(torch.cat([left, right], 1)).mean(dim=(2, 3)))


def two_images_factory():  # --factory test_bundle:two_images_factory
    torch.manual_seed(0)
    return TwoImages().eval(), (torch.randn(1, 3, 16, 16), torch.randn(1, 3, 16, 16))


def _sha(p: Path) -> str:
    return hashlib.sha256(p.read_bytes()).hexdigest()


def _tree(root: Path) -> dict[str, str]:
    return {p.relative_to(root).as_posix(): _sha(p) for p in sorted(root.rglob("*")) if p.is_file()}


@pytest.fixture(scope="module")
def labels(tmp_path_factory) -> Path:
    p = tmp_path_factory.mktemp("labels") / "labels.txt"
    p.write_text("\n".join(LABELS) + "\n")
    return p


@pytest.fixture(scope="module")
def cnn_bundle(models, cache_dir, labels, tmp_path_factory):
    out = tmp_path_factory.mktemp("cnn-bundle") / "out"
    assert main(["build", str(models / "cnn.pt"), "--target", "android-arm64-cpu", "-o", str(out), "-q",
                 "--variants", ",".join(VARIANTS), *SYNTHETIC, "--labels", str(labels), "--author", "edgec tests",
                 "--license", "MIT", "--cache-dir", str(cache_dir)]) == 0
    return out, json.loads((out / "manifest.json").read_text()), json.loads((out / "bundle" / "manifest.json").read_text())


def test_files_sha256_and_zip_reproduce_the_directory(cnn_bundle, tmp_path):
    out, build, bm = cnn_bundle
    root = out / "bundle"
    assert build["bundle"] == {"path": "bundle", "zip": "bundle.zip", "task": "image_classifier",
                               "models": [f"model_{v}.tflite" for v in VARIANTS], "checks_ok": True}
    listed = {k: v["sha256"] for k, v in bm["files"].items()}
    assert listed == {k: v for k, v in _tree(root).items() if k != "manifest.json"}
    assert {"labels.txt", "MODEL_CARD.md", "snippets/MediaPipeImageClassifier.kt",
            *(f"model_{v}.tflite" for v in VARIANTS), *(f"snippets/Interpreter_{v}.kt" for v in VARIANTS)} == set(listed)
    with zipfile.ZipFile(out / "bundle.zip") as zf:
        zf.extractall(tmp_path)
    assert _tree(tmp_path / "bundle") == _tree(root)
    assert (root / "labels.txt").read_text().splitlines() == LABELS


def test_every_model_carries_its_metadata_and_takes_pixels(cnn_bundle):
    from edgec.formats.metadata import read_metadata

    out, build, bm = cnn_bundle
    for m in bm["models"]:
        meta, files = read_metadata(out / "bundle" / m["file"])
        assert meta.to_dict() == m["metadata"] and files == {"labels.txt": (out / "bundle" / "labels.txt").read_bytes()}
        assert (meta.author, meta.license, meta.inputs[0].color_space) == ("edgec tests", "MIT", "RGB")
        (inp,) = m["inputs"]
        if m["variant"] == "int8":  # full integer: uint8 pixels for MediaPipe and Android
            assert (inp["dtype"], inp["quantization"]) == ("uint8", {"scale": pytest.approx(1 / 255), "zero_point": 0})
        else:
            assert (inp["dtype"], inp["quantization"]) == ("float32", None)
        assert inp["normalization"] == {"mean": [0.0], "std": [255.0]}  # ImageNet's per-channel one is inside
        assert m["folded"][0]["folded_mean"] == pytest.approx([123.675, 116.28, 103.53])
        assert m["outputs"][0]["dtype"] == "float32" and m["check"]["ok"], m["check"]
        assert m["parity"]["ok"] and m["bench"] is not None
    assert bm["normalization"]["source_expects"]["origin"] == "default"
    card = (out / "bundle" / "MODEL_CARD.md").read_text()
    assert "ImageNet's for 3-channel images" in card and "model_int8.tflite" in card


def test_snippets_use_the_real_io(cnn_bundle):
    out, _, bm = cnn_bundle
    snip = out / "bundle" / "snippets"
    fp32 = (snip / "Interpreter_fp32.kt").read_text()
    assert '"x" to in0' in fp32 and '"output" to out0' in fp32 and "allocateDirect(12288)" in fp32  # 32*32*3*4
    assert "FloatArray(10)" in fp32 and "/ 255.0f" in fp32 and 'open("labels.txt")' in fp32
    int8 = (snip / "Interpreter_int8.kt").read_text()
    assert "allocateDirect(3072)" in int8 and "buf.put((argb shr 16 and 0xFF).toByte())" in int8
    assert 'setModelAssetPath(modelAsset)' in (snip / "MediaPipeImageClassifier.kt").read_text()


@pytest.mark.skipif(not HAVE_MEDIAPIPE, reason="mediapipe is not installed")
def test_mediapipe_classifies_with_the_embedded_labels(cnn_bundle):
    import mediapipe as mp
    from mediapipe.tasks.python import vision

    from conftest import run_tflite

    out, build, _ = cnn_bundle
    pixels = np.random.default_rng(1).integers(0, 256, (32, 32, 3), dtype=np.uint8)
    mean, std = np.array([0.485, 0.456, 0.406]), np.array([0.229, 0.224, 0.225])
    source_input = ((pixels / 255.0 - mean) / std).transpose(2, 0, 1)[None].astype(np.float32)
    for v in VARIANTS:
        with vision.ImageClassifier.create_from_model_path(str(out / "bundle" / f"model_{v}.tflite")) as clf:
            cats = clf.classify(mp.Image(image_format=mp.ImageFormat.SRGB, data=pixels)).classifications[0].categories
        want = int(np.argmax(run_tflite(out / f"model_{v}.tflite", build, {"x": source_input})[0]))
        assert (cats[0].index, cats[0].category_name) == (want, LABELS[want]), v


def test_edgec_bundle_recreates_the_same_models(cnn_bundle, tmp_path, capsys):
    out, _, bm = cnn_bundle
    copy = tmp_path / "out"
    shutil.copytree(out, copy)
    assert main(["bundle", str(copy), "--variants", "fp32,int8", "--name", "tiny"]) == 0
    again = json.loads((copy / "bundle" / "manifest.json").read_text())
    assert [m["variant"] for m in again["models"]] == ["fp32", "int8"] and again["name"] == "tiny"
    assert not list(copy.glob(".bundle-*"))
    assert main(["bundle", str(copy)]) == 0  # the build's own options again: byte-identical models
    assert {m["file"]: m["sha256"] for m in json.loads((copy / "bundle" / "manifest.json").read_text())["models"]} == \
        {m["file"]: m["sha256"] for m in bm["models"]}
    assert main(["inspect", str(copy / "bundle" / "model_int8.tflite")]) == 0
    assert "TENSOR_AXIS_LABELS file labels.txt" in capsys.readouterr().out


@pytest.mark.parametrize("flags,field", [
    (["--labels", "NINE"], "labels"),
    (["--mean", "0.5,0.5", "--std", "0.2,0.2"], "normalization.mean"),
])
def test_bundle_refusals_leave_the_bundle_untouched(cnn_bundle, tmp_path, capsys, flags, field):
    out, _, _ = cnn_bundle
    copy = tmp_path / "out"
    shutil.copytree(out, copy)
    nine = tmp_path / "nine.txt"
    nine.write_text("\n".join(LABELS[:9]) + "\n")
    before = _tree(copy)
    assert main(["bundle", str(copy), *[str(nine) if f == "NINE" else f for f in flags]]) == 2
    err = capsys.readouterr().err
    assert f"{field}" in err, err
    assert _tree(copy) == before and not list(copy.glob(".bundle-*"))


def test_build_refusals_write_nothing(models, cache_dir, labels, tmp_path, capsys):
    nine = tmp_path / "nine.txt"
    nine.write_text("\n".join(LABELS[:9]) + "\n")
    cases = [(["--factory", "test_bundle:two_images_factory", "--labels", str(labels)], "inputs",
              "exactly one input, an image"),
             ([str(models / "cnn.pt"), "--labels", str(nine), "--variants", "fp32"], "labels",
              "9 lines but output 'output' has 10 classes"),
             ([str(models / "cnn.pt"), "--mean", "0.5,0.5,0.5,0.5", "--variants", "fp32"], "normalization.mean",
              "4 value(s)")]
    for i, (args, field, what) in enumerate(cases):
        out = tmp_path / f"out{i}"
        rc = main(["build", *args, "--target", "android-arm64-cpu", "-o", str(out), "-q", "--no-bench",
                   "--synthetic-validation", "--cache-dir", str(cache_dir)])
        err = capsys.readouterr().err
        assert rc == 2 and field in err and what in err, err
        assert not out.exists() and not list(tmp_path.glob(f".out{i}*"))


def test_generic_bundle_for_a_two_input_nchw_model(models, cache_dir, tmp_path):
    out = tmp_path / "out"
    assert main(["build", str(models / "two_input.pt"), "--target", "android-arm64-cpu", "-o", str(out), "-q",
                 "--variants", "fp32", "--keep-layout", "--no-bench", "--synthetic-validation",
                 "--cache-dir", str(cache_dir)]) == 0
    (m,) = json.loads((out / "bundle" / "manifest.json").read_text())["models"]
    assert m["task"] == "generic" and not (out / "bundle" / "snippets" / "MediaPipeImageClassifier.kt").exists()
    meta = {t["name"]: t for t in m["metadata"]["inputs"] + m["metadata"]["outputs"]}
    assert meta["image"]["content"] == "image" and meta["features"]["content"] == "feature"
    assert meta["image"]["dimension_names"] == ["batch", "channels", "height", "width"]  # --keep-layout
    assert m["folded"] and next(r for r in m["inputs"] if r["name"] == "image")["shape"] == [1, 3, 16, 16]
    assert meta["features"]["color_space"] is None and meta["features"]["normalization"] is None
    assert all(not t["files"] for t in meta.values()) and m["check"]["ok"]


def test_int8_io_model_gets_uint8_pixels_and_float_scores(models, cache_dir, labels, tmp_path):
    out = tmp_path / "out"
    assert main(["build", str(models / "cnn.pt"), "--target", "android-arm64-cpu", "-o", str(out), "-q",
                 "--variants", "int8", "--quant-io", "int8", *SYNTHETIC, "--no-bench", "--labels", str(labels),
                 "--cache-dir", str(cache_dir)]) == 0
    from edgec.formats.tflite import read_tflite

    built = read_tflite(out / "model_int8.tflite")
    assert (built.inputs[0].dtype, built.outputs[0].dtype) == ("int8", "int8")
    m = next(m for m in json.loads((out / "bundle" / "manifest.json").read_text())["models"] if m["variant"] == "int8")
    assert m["inputs"][0]["dtype"] == "uint8" and m["outputs"][0]["dtype"] == "float32"
    assert m["dequantized_outputs"] and m["check"]["ok"], m


def test_bundle_help_imports_no_framework():
    code = ("import sys\nfrom edgec.cli.main import main\ntry:\n    main(['bundle', '--help'])\nexcept SystemExit:\n"
            "    pass\nprint('HEAVY=' + ','.join(m for m in ('torch', 'tensorflow', 'mediapipe', 'onnx', 'ai_edge_litert')"
            " if m in sys.modules))")
    proc = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, timeout=60)
    assert proc.returncode == 0 and proc.stdout.strip().splitlines()[-1] == "HEAVY=", proc.stdout + proc.stderr


def test_auto_task_never_refuses_a_plain_build():
    """Without labels, only a model MediaPipe can take becomes an image classifier; a grayscale or
    two-input model gets generic metadata rather than a refused build."""
    from edgec.bundle import BundleOptions
    from edgec.bundle.plan import TensorPlan, resolve_task

    rgb = TensorPlan(0, "image", "image", (1, 32, 32, 3), "float32", True, 3)
    gray = TensorPlan(0, "image", "image", (1, 28, 28, 1), "float32", True, 1)
    scores = [TensorPlan(0, "output", "output", (1, 10), "float32")]
    auto, labelled = BundleOptions(), BundleOptions(labels="labels.txt")
    assert resolve_task(auto, [rgb], 1, scores) == "image_classifier"
    assert resolve_task(auto, [gray], 1, scores) == "generic"
    assert resolve_task(auto, [rgb], 1, scores, channel_order="bgr") == "generic"
    assert resolve_task(auto, [rgb], 1, scores, layouts={"image": "NCHW"}) == "generic"
    assert resolve_task(auto, [rgb, rgb], 2, scores) == "generic"
    assert resolve_task(labelled, [gray], 1, scores) == "image_classifier"  # asked for: checked, maybe refused
    assert resolve_task(BundleOptions(task="generic", labels="l.txt"), [rgb], 1, scores) == "generic"


@pytest.mark.skipif(not HAVE_MEDIAPIPE, reason="mediapipe is not installed")
def test_score_calibration_is_what_mediapipe_applies(cnn_bundle, tmp_path, capsys):
    """Per-class sigmoid calibration (scale, slope, offset) written into the metadata: MediaPipe's
    scores become scale / (1 + exp(-(slope * logit + offset))); an empty line gives the default score."""
    import mediapipe as mp
    from mediapipe.tasks.python import vision

    from conftest import run_tflite

    out, build, _ = cnn_bundle
    copy = tmp_path / "out"
    shutil.copytree(out, copy)
    params = [(0.9, 1.5, -0.25)] * 9
    calib = tmp_path / "calibration.txt"
    calib.write_text("\n".join(",".join(map(str, p)) for p in params) + "\n\n")  # class 9: empty line
    assert main(["bundle", str(copy), "--variants", "fp32", "--score-calibration", str(calib),
                 "--default-score", "0.125"]) == 0
    short = tmp_path / "short.txt"
    short.write_text("1,1,0\n")
    assert main(["bundle", str(copy), "--score-calibration", str(short)]) == 2
    assert "score_calibration" in capsys.readouterr().err
    pixels = np.random.default_rng(2).integers(0, 256, (32, 32, 3), dtype=np.uint8)
    mean, std = np.array([0.485, 0.456, 0.406]), np.array([0.229, 0.224, 0.225])
    x = ((pixels / 255.0 - mean) / std).transpose(2, 0, 1)[None].astype(np.float32)
    logits = run_tflite(out / "model_fp32.tflite", build, {"x": x})[0][0].astype(np.float64)
    want = [s / (1 + np.exp(-(k * z + b))) for (s, k, b), z in zip(params, logits)] + [0.125]
    opts = vision.ImageClassifierOptions(base_options=mp.tasks.BaseOptions(
        model_asset_path=str(copy / "bundle" / "model_fp32.tflite")), max_results=10)
    with vision.ImageClassifier.create_from_options(opts) as clf:
        cats = clf.classify(mp.Image(image_format=mp.ImageFormat.SRGB, data=pixels)).classifications[0].categories
    got = {c.index: c.score for c in cats}
    assert sorted(got) == list(range(10))
    assert max(abs(got[i] - want[i]) for i in range(10)) < 1e-4
