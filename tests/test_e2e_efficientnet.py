"""End to end on the real pretrained EfficientNet-Lite0 (from PyPI): TorchScript .pt -> TFLite for rpi4,
checked on real photos against torch."""

from __future__ import annotations

import json

import numpy as np
import pytest

from conftest import run_tflite

pytestmark = pytest.mark.slow


@pytest.fixture(scope="module")
def effnet_build(tmp_path_factory):
    from edgec.cli.main import main
    from edgec.examples import write_torchscript

    d = tmp_path_factory.mktemp("effnet")
    pt = write_torchscript(d / "efficientnet_lite0.pt")
    assert main(["build", str(pt), "--target", "rpi", "-o", str(d / "out"), "-q",
                 "--cache-dir", str(d / "cache")]) == 0
    return pt, d / "out", json.loads((d / "out" / "manifest.json").read_text())


def test_manifest_and_artifacts(effnet_build):
    _, out, m = effnet_build
    assert m["route"] == ["torchscript", "onnx", "saved_model", "tflite"]
    assert m["target"]["name"] == "rpi4"
    for key in ("edgec_version", "target", "route", "artifacts", "steps", "environment"):
        assert key in m
    variants = {a["variant"] for a in m["artifacts"] if a["format"] == "tflite"}
    assert variants == {"fp32", "fp16", "dynamic_int8"}
    sizes = {a["variant"]: a["bytes"] for a in m["artifacts"] if a["format"] == "tflite"}
    assert sizes["fp16"] < 0.55 * sizes["fp32"] and sizes["dynamic_int8"] < 0.3 * sizes["fp32"]
    row = m["tflite_io"]["inputs"][0]
    assert row["shape"] == [1, 224, 224, 3] and row["layout"] == "NHWC"
    assert m["parity"]["ok"]


def test_fp32_matches_torch_on_real_photos(effnet_build):
    import torch

    from edgec.examples import efficientnet_lite0, normalized_nchw, photo

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
