"""Calibration/validation data: image folders (decoded, resized, normalized, laid out), .npy/.npz
keyed by input name, generators; bad data refused naming the file and the input; calibration and
validation kept apart."""

from __future__ import annotations

import sys

import numpy as np
import pytest

from edgec.data import datasets
from edgec.data.calibration import resolve
from edgec.pipeline.config import BuildConfig
from edgec.data.datasets import IMAGENET_MEAN, IMAGENET_STD, Preprocess
from edgec.errors import InputError, UsageError
from edgec.formats import Format, TensorSpec

IMG_NCHW = [TensorSpec("image", (1, 3, 8, 8), "float32")]
IMG_NHWC = [TensorSpec("image", (1, 8, 8, 3), "float32")]
TWO = [TensorSpec("ids", (1, 4), "int64"), TensorSpec("feat", (1, 3), "float32")]


def _png(path, color, size=(16, 12)):
    from PIL import Image

    Image.new("RGB", size, color).save(path)
    return path


def test_image_folder_is_normalized_and_laid_out(tmp_path):
    _png(tmp_path / "a.png", (255, 0, 128))
    _png(tmp_path / "b.png", (0, 255, 0))
    (tmp_path / ".hidden.png").write_bytes(b"not read")
    ds = datasets.load(str(tmp_path), IMG_NCHW, Preprocess())
    assert [s.origin for s in ds.samples] == [str(tmp_path / "a.png"), str(tmp_path / "b.png")]
    x = ds.samples[0].feed["image"]
    assert x.shape == (1, 3, 8, 8) and x.dtype == np.float32
    want = (np.array([1.0, 0.0, 128 / 255]) - IMAGENET_MEAN) / IMAGENET_STD
    assert np.allclose(x[0, :, 4, 4], want, atol=1e-6)
    nhwc = datasets.load(str(tmp_path), IMG_NHWC, Preprocess()).samples[0].feed["image"]
    assert nhwc.shape == (1, 8, 8, 3) and np.allclose(nhwc[0, 4, 4], want, atol=1e-6)
    bgr = datasets.load(str(tmp_path), IMG_NCHW, Preprocess(channel_order="bgr", mean=(0.5,), std=(0.5,)))
    assert np.allclose(bgr.samples[0].feed["image"][0, :, 0, 0], [(128 / 255 - .5) / .5, -1.0, 1.0], atol=1e-6)


def test_resize_then_center_crop_and_grayscale(tmp_path):
    from PIL import Image

    img = np.zeros((20, 40, 3), np.uint8)
    img[:, 15:25] = 255                              # a white band in the middle of a 40x20 image
    Image.fromarray(img).save(tmp_path / "band.png")
    crop = datasets.load(str(tmp_path), IMG_NHWC, Preprocess(resize=10, mean=(0,), std=(1,))).samples[0].feed["image"]
    # shorter side 20 -> 10 (20x10), center 8x8 crop: columns 6..13 of 20; the band is columns 7.5..12.5
    assert crop.shape == (1, 8, 8, 3)
    assert crop[0, 4, 0, 0] < 0.05 and crop[0, 4, 4, 0] > 0.95
    gray = [TensorSpec("x", (1, 1, 5, 7), "float32")]
    Image.new("RGB", (16, 12), (100, 100, 100)).save(tmp_path / "band.png")
    x = datasets.load(str(tmp_path), gray, Preprocess()).samples[0].feed["x"]
    assert x.shape == (1, 1, 5, 7) and np.allclose(x, 100 / 255, atol=1e-6)  # mean 0, std 1 for 1 channel


def test_images_need_one_image_input(tmp_path):
    _png(tmp_path / "a.png", (1, 2, 3))
    with pytest.raises(UsageError, match="one 4-D image input"):
        datasets.load(str(tmp_path), TWO, Preprocess())


def test_undecodable_image_names_the_file(tmp_path):
    (tmp_path / "broken.jpg").write_bytes(b"\xff\xd8 nope")
    with pytest.raises(InputError, match="broken.jpg"):
        datasets.load(str(tmp_path), IMG_NCHW, Preprocess())


def test_npz_keyed_by_input_name(tmp_path):
    ids = np.arange(12).reshape(3, 4)
    feat = np.ones((3, 1, 3), np.float64)              # [N, *shape] with the batch dim kept: also fine
    np.savez(tmp_path / "d.npz", ids=ids, feat=feat)
    ds = datasets.load(str(tmp_path / "d.npz"), TWO, Preprocess(), limit=2)
    assert len(ds.samples) == 2 and ds.total == 3
    s = ds.samples[1]
    assert s.feed["ids"].dtype == np.int64 and s.feed["ids"].tolist() == [[4, 5, 6, 7]]
    assert s.feed["feat"].dtype == np.float32 and s.feed["feat"].shape == (1, 3)
    assert s.origin.endswith("d.npz[1]")


def test_npy_for_a_single_input_and_folders_of_arrays(tmp_path):
    np.save(tmp_path / "a.npy", np.zeros((2, 3, 8, 8), np.float32))
    np.save(tmp_path / "b.npy", np.ones((1, 3, 8, 8), np.float32))
    ds = datasets.load(str(tmp_path), IMG_NCHW, Preprocess())
    assert len(ds.samples) == 3 and ds.samples[2].feed["image"].max() == 1.0
    with pytest.raises(InputError, match="one array but the model has 2 inputs"):
        datasets.load(str(tmp_path / "a.npy"), TWO, Preprocess())


@pytest.mark.parametrize("bad, words", [
    ({"ids": np.zeros((2, 4)), "feat": np.full((2, 3), np.nan)}, ["feat", "NaN/Inf", "bad.npz[0]"]),
    ({"ids": np.zeros((2, 4)), "feat": np.array([[0, 0, np.inf], [0, 0, 0]])}, ["feat", "NaN/Inf"]),
    ({"ids": np.zeros((2, 5)), "feat": np.zeros((2, 3))}, ["ids", "shape [1, 5]", "expects [1, 4]", "bad.npz[0]"]),
    ({"ids": np.full((2, 4), 0.5), "feat": np.zeros((2, 3))}, ["ids", "fractional"]),
    ({"feat": np.zeros((2, 3))}, ["missing input(s) ids", "bad.npz"]),
    ({"ids": np.zeros((2, 4)), "feat": np.zeros((2, 3)), "extra": np.zeros(2)}, ["unknown key(s) extra"]),
])
def test_bad_arrays_are_refused_naming_file_and_input(tmp_path, bad, words):
    np.savez(tmp_path / "bad.npz", **bad)
    with pytest.raises(InputError) as err:
        datasets.load(str(tmp_path / "bad.npz"), TWO, Preprocess())
    for w in words:
        assert w in str(err.value)


def test_generator(tmp_path, monkeypatch):
    (tmp_path / "gen_mod.py").write_text(
        "import numpy as np\n"
        "def good():\n"
        "    for i in range(5):\n"
        "        yield {'ids': np.full((1, 4), i), 'feat': np.zeros((3,), np.float32)}\n"
        "def tuples():\n"
        "    yield (np.zeros((1, 4)), np.zeros((1, 3)))\n"
        "def bad():\n"
        "    yield {'ids': np.zeros((1, 4)), 'feat': np.array([0, np.nan, 0])}\n")
    monkeypatch.syspath_prepend(str(tmp_path))
    ds = datasets.load("gen_mod:good", TWO, Preprocess(), limit=3)
    assert [s.feed["ids"][0, 0] for s in ds.samples] == [0, 1, 2]
    assert ds.samples[0].feed["feat"].shape == (1, 3)       # missing batch dim added
    assert len(datasets.load("gen_mod:tuples", TWO, Preprocess()).samples) == 1
    with pytest.raises(InputError, match=r"gen_mod:bad item 0.*feat.*NaN"):
        datasets.load("gen_mod:bad", TWO, Preprocess())
    with pytest.raises(UsageError, match="cannot import data generator"):
        datasets.load("gen_mod:nope", TWO, Preprocess())
    sys.modules.pop("gen_mod", None)


def _cfg(**kw):
    return BuildConfig(model="m.pt", **kw)


def _npz(path, n, seed):
    np.savez(path, ids=np.random.default_rng(seed).integers(0, 9, (n, 4)), feat=np.zeros((n, 3)))
    return str(path)


def test_calibration_and_validation_are_kept_apart(tmp_path):
    cal, val = _npz(tmp_path / "cal.npz", 6, 1), _npz(tmp_path / "val.npz", 4, 2)
    data = resolve(_cfg(calibration_data=cal, validation_data=val), ("fp32", "int8"), TWO, Format.TORCHSCRIPT, [])
    assert len(data.calibration.samples) == 6 and len(data.validation.samples) == 4
    assert data.record()["calibration"]["synthetic"] is False
    overlap = tmp_path / "overlap.npz"
    with np.load(cal) as c:
        np.savez(overlap, ids=c["ids"][:2], feat=c["feat"][:2])
    with pytest.raises(UsageError, match="2 validation sample.* also appear in the calibration data"):
        resolve(_cfg(calibration_data=cal, validation_data=str(overlap)), ("int8",), TWO, Format.TORCHSCRIPT, [])
    # one source for both: a seeded split, disjoint, calibration at most half
    both = resolve(_cfg(calibration_data=cal, validation_data=cal, calibration_samples=100), ("int8",), TWO,
                   Format.TORCHSCRIPT, [])
    cal_ids = {s.origin for s in both.calibration.samples}
    val_ids = {s.origin for s in both.validation.samples}
    assert len(cal_ids) == 3 and len(val_ids) == 3 and not cal_ids & val_ids


def test_missing_data_needs_an_explicit_flag(tmp_path):
    with pytest.raises(UsageError, match="need calibration data") as err:
        resolve(_cfg(synthetic_validation=True), ("fp32", "int8"), TWO, Format.TORCHSCRIPT, [])
    assert "--calibration-data" in err.value.hint and "--synthetic-calibration" in err.value.hint
    with pytest.raises(UsageError, match="no validation data") as err:
        resolve(_cfg(), ("fp32",), TWO, Format.TORCHSCRIPT, [])
    assert "--synthetic-validation" in err.value.hint
    warned = []
    data = resolve(_cfg(synthetic_calibration=True, synthetic_validation=True, calibration_samples=5),
                   ("int8",), TWO, Format.TORCHSCRIPT, [], warn=warned.append)
    assert "SYNTHETIC" in warned[0] and data.calibration.synthetic and data.validation.synthetic
    assert len(data.calibration.samples) == 5 and len(data.validation.samples) == 8
    assert data.record()["calibration"]["synthetic"] is True
    # a TFLite source has no stage to validate; fp32-only builds need no calibration
    assert resolve(_cfg(), ("fp32",), TWO, Format.TFLITE, []).validation is None
