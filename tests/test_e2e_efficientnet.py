"""End to end on the real pretrained EfficientNet-Lite0 (from PyPI): TorchScript .pt -> TFLite for rpi4
(fp32, fp16, dynamic_int8, and int8 calibrated on real photos), validated by the parity ledger on
real photos from other scenes (scikit-image and scikit-learn photos, crops and flips: 136 inputs),
and checked independently against torch."""

from __future__ import annotations

import json

import numpy as np
import pytest

from conftest import run_tflite

pytestmark = pytest.mark.slow


VARIANTS = ("fp32", "fp16", "dynamic_int8", "int8")
CALIBRATION_SAMPLES = 48


@pytest.fixture(scope="module")
def photos(tmp_path_factory):
    """Disjoint photo sets: calibration (6 photos x 8 views), validation (17 other photos x 8 views)."""
    from edgec.data.examples import photo_sets

    return photo_sets(tmp_path_factory.mktemp("photos"))


@pytest.fixture(scope="module")
def effnet_build(tmp_path_factory, photos):
    import time

    from edgec.cli.main import main
    from edgec.data.examples import write_torchscript

    d = tmp_path_factory.mktemp("effnet")
    pt = write_torchscript(d / "efficientnet_lite0.pt")
    calibration, validation = photos
    t0 = time.perf_counter()
    assert main(["build", str(pt), "--target", "rpi", "-o", str(d / "out"), "-q", "--cache-dir", str(d / "cache"),
                 "--variants", ",".join(VARIANTS), "--calibration-data", str(calibration),
                 "--calibration-samples", str(CALIBRATION_SAMPLES), "--validation-data", str(validation)]) == 0
    print(f"\nefficientnet build with ledger: {time.perf_counter() - t0:.1f}s")
    return pt, d / "out", json.loads((d / "out" / "manifest.json").read_text())


def test_manifest_and_artifacts(effnet_build):
    _, out, m = effnet_build
    assert m["route"] == ["torchscript", "onnx", "saved_model", "tflite"]
    assert m["target"]["name"] == "rpi4"
    for key in ("edgec_version", "target", "route", "artifacts", "steps", "environment"):
        assert key in m
    variants = {a["variant"] for a in m["artifacts"] if a["format"] == "tflite"}
    assert variants == set(VARIANTS)
    sizes = {a["variant"]: a["bytes"] for a in m["artifacts"] if a["format"] == "tflite"}
    assert sizes["fp16"] <= 0.55 * sizes["fp32"] and sizes["dynamic_int8"] < 0.3 * sizes["fp32"]
    assert sizes["int8"] <= 0.3 * sizes["fp32"]
    row = m["tflite_io"]["inputs"][0]
    assert row["shape"] == [1, 224, 224, 3] and row["layout"] == "NHWC"
    assert m["parity"]["ok"]


def test_fp32_matches_torch_on_real_photos(effnet_build):
    import torch

    from edgec.data.examples import efficientnet_lite0, normalized_nchw, photo

    _, out, m = effnet_build
    model, _ = efficientnet_lite0()
    for name, cls in (("chelsea", 285), ("coffee", 967)):
        x = normalized_nchw(photo(name))
        with torch.no_grad():
            ref = model(torch.from_numpy(x)).numpy()
        got = run_tflite(out / "model_fp32.tflite", m, {"image": x})[0]
        assert float(np.max(np.abs(got - ref))) <= 1e-4
        assert int(np.argmax(got)) == cls
        fp16 = run_tflite(out / "model_fp16.tflite", m, {"image": x})[0]
        assert int(np.argmax(fp16)) == cls


def test_html_report_renders_in_chromium(effnet_build, tmp_path):
    """The report of a real build opens in headless Chromium with no console errors, every plot drawn."""
    import re

    from PIL import Image

    from browser import render

    _, out, _ = effnet_build
    shot = tmp_path / "report.png"
    dom, console = render(out / "report.html", shot)
    assert console == [], console
    charts = re.findall(r'<svg[^>]*class="chart".*?</svg>', dom, flags=re.S)
    assert len(charts) >= 4  # size, error, cosine, top-1 (+ latency, Pareto when measured)
    for c in charts:
        assert re.search(r"<(rect|circle|polyline)\b", c), c[:200]
    img = Image.open(shot).convert("RGB")
    assert img.size[0] >= 1000 and len(img.getcolors(1 << 20) or []) > 20  # not a blank page


def test_bench_section_estimates_and_compat(effnet_build):
    """The build measured every variant here, estimated it on the Pi, and loaded every one with the
    Pi's runtime (ai-edge-litert 2.1.0: nothing is flagged incompatible)."""
    from edgec.bench.estimate import estimate_artifact
    from edgec.targets import load_target

    _, out, m = effnet_build
    bench = m["bench"]
    for variant in ("fp32", "fp16", "dynamic_int8"):
        r = bench[variant]
        assert r["p50_ms"] > 0 and r["runs"] >= 20 and r["conditions"]["runtime"] == "ai-edge-litert"
        assert r["estimate"]["estimated"] is True and r["estimate"]["device"].startswith("Raspberry Pi 4")
    assert all(bench[v]["compat"]["ok"] and bench[v]["compat"]["load"]["loaded"] for v in VARIANTS)
    phone = estimate_artifact(out / "model_fp32.tflite", load_target("android-arm64-cpu"), "fp32")
    # Pixel 4, TFLite CPU: 12 ms (tensorflow/tpu), a held-out row of the reference table: out of sample.
    assert phone["low_ms"] <= 12.0 <= phone["high_ms"], phone


def _ledger(m: dict) -> dict:
    return {st["stage"]: st for st in m["parity"]["stages"]}


def test_ledger_on_real_photos(effnet_build, photos, record_property):
    """The acceptance numbers, from the build's own ledger (real, disjoint validation photos)."""
    from edgec.validate.table import render_ledger

    _, _, m = effnet_build
    p = m["parity"]
    from edgec.data.examples import VIEWS

    def photo_of(f):  # "motorcycle_left_center_flip.png" -> "motorcycle_left"
        return next(f.stem[: -len(v) - 1] for v in sorted(VIEWS, key=len, reverse=True) if f.stem.endswith("_" + v))

    calibration, validation = ({photo_of(f) for f in d.iterdir()} for d in photos)
    assert len(calibration) == 6 and len(validation) == 17
    assert not calibration & validation                                  # different photos, not just views
    assert m["calibration"]["samples"] == CALIBRATION_SAMPLES and not m["calibration"]["synthetic"]
    assert p["validation"]["samples"] >= 100 and not p["synthetic"] and p["ok"]
    ledger = _ledger(m)
    assert list(ledger) == ["onnx", "saved_model", "tflite:fp32", "tflite:fp16", "tflite:dynamic_int8", "tflite:int8"]
    fp32, fp16, int8 = (ledger[f"tflite:{v}"]["outputs"][0] for v in ("fp32", "fp16", "int8"))
    assert fp32["max_abs"] <= 1e-4                                       # vs torch, every sample
    assert fp16["separated_rows"] >= 50 and fp16["top1_separated"] == 1.0  # where fp32 leads by >= 0.01
    assert int8["top1"] is not None and int8["rows"] == p["validation"]["samples"]   # reported on all
    assert int8["confident_rows"] >= 20 and int8["top1_confident"] >= 0.95          # where fp32 p >= 0.5
    for v in ("fp32", "fp16", "dynamic_int8", "int8"):
        st = ledger[f"tflite:{v}"]
        assert st["reference_kernels"]["ok"] and st["outputs"][0]["drift"]["cosine"] > 0.99
    table = "\n".join(render_ledger(p))
    print("\n" + table)
    for k, v in (("fp32_max_abs", fp32["max_abs"]), ("fp16_top1_separated", fp16["top1_separated"]),
                 ("int8_top1", int8["top1"]), ("int8_top1_confident", int8["top1_confident"])):
        record_property(k, v)


def test_int8_agrees_with_fp32_on_a_held_out_photo(effnet_build):
    from edgec.data.examples import normalized_nchw, photo

    _, out, m = effnet_build
    x = normalized_nchw(photo("coffee"))  # a validation photo, never calibrated on
    fp32 = run_tflite(out / "model_fp32.tflite", m, {"image": x})[0]
    int8 = run_tflite(out / "model_int8.tflite", m, {"image": x})[0]
    assert int(np.argmax(fp32)) == int(np.argmax(int8)) == 967


def test_parity_names_a_corrupted_layer_of_the_real_model(effnet_build, photos, tmp_path, capsys):
    """One conv's weights damaged in the built fp32 model: `edgec parity` names that layer first, from
    the fp32 TFLite (tensors matched by name) and from the TorchScript source (via ONNX intermediates)."""
    import shutil

    from edgec.cli.main import main
    from tflite_edit import corrupt_weights, op_types

    pt, out, _ = effnet_build
    ops = op_types(out / "model_fp32.tflite")
    layer = [i for i, op in enumerate(ops) if op == "CONV_2D"][len(ops) // 6]   # a conv a third of the way in
    damaged = corrupt_weights(out / "model_fp32.tflite", tmp_path / "damaged.tflite", layer)
    data = tmp_path / "data"
    data.mkdir()
    for f in sorted(photos[1].iterdir())[:6]:
        shutil.copy(f, data / f.name)
    for reference in (out / "model_fp32.tflite", pt):
        assert main(["parity", str(reference), str(tmp_path / "damaged.tflite"), "--data", str(data), "--json"]) == 8
        first = json.loads(capsys.readouterr().out)["layers"]["first_divergent"]
        assert (first["index"], first["tensor"]) == (layer, damaged["tensor"]), first
