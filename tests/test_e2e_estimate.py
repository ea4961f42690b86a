"""Slow: a MobileNetV2-shaped network built in code, converted for real, estimated on rpi4 and
android-arm64-cpu from its .tflite graph (not from the analytic description)."""

from __future__ import annotations

import pytest

import edgec
from edgec.bench.estimate import estimate_artifact
from edgec.formats.opgraph import features, read_op_costs
from edgec.targets import load_target

pytestmark = pytest.mark.slow


@pytest.fixture(scope="module")
def mobilenet_v2(tmp_path_factory, cache_dir):
    d = tmp_path_factory.mktemp("mbv2")
    cfg = edgec.BuildConfig(factory="mobilenet_v2:mobilenet_v2_factory", target="rpi4", out=str(d / "out"),
                            variants=("fp32",), bench=False, cache_dir=str(cache_dir), synthetic_validation=True)
    return edgec.build(cfg).out / "model_fp32.tflite"


def test_graph_macs_match_the_published_architecture(mobilenet_v2):
    assert features(read_op_costs(mobilenet_v2)).macs / 1e6 == pytest.approx(300, rel=0.02)


def test_mobilenet_v2_estimates(mobilenet_v2):
    pi = estimate_artifact(mobilenet_v2, load_target("rpi4"), "fp32")
    assert pi["estimated"] is True and pi["low_ms"] <= 44.0 <= pi["high_ms"], pi  # XNNPACK README: 44 ms
    phone = estimate_artifact(mobilenet_v2, load_target("android-arm64-cpu"), "fp32")
    # No Pixel 4 MobileNet v2 number is published; the Pixel 3's (17.5 ms) bounds it from above.
    assert phone["estimated"] is True and phone["low_ms"] < 17.5 and phone["p50_ms"] > 0
