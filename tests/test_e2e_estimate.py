"""Slow: a MobileNetV2-shaped network built in code, converted for real, estimated on rpi4 and
android-arm64-cpu from its .tflite graph (not from the analytic description), against a published
number the estimator's fit never saw (a held-out row of targets/reference-latencies.csv)."""

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
    """Out of sample: the Pi 4's published MobileNet v2 number (44 ms, google/XNNPACK README.md) is a
    held-out row of the reference table, which the fit never sees (asserted first)."""
    from edgec.bench.estimate import all_rows
    from edgec.bench.estimate_refs import load_table

    rpi4 = load_target("rpi4")
    (row,) = [r for r in load_table("holdout") if r.model == "MobileNet v2 1.0 224" and r.device == rpi4.reference["device"]]
    assert row.latency_ms == 44.0 and row not in all_rows(rpi4)
    pi = estimate_artifact(mobilenet_v2, rpi4, "fp32")
    assert pi["estimated"] is True and pi["low_ms"] <= 44.0 <= pi["high_ms"], pi
    assert all(r["model"] != row.model for r in pi["references"])
    phone = estimate_artifact(mobilenet_v2, load_target("android-arm64-cpu"), "fp32")
    # No Pixel 4 MobileNet v2 number is published; the Pixel 3's (17.5 ms) bounds it from above.
    assert phone["estimated"] is True and phone["low_ms"] < 17.5 and phone["p50_ms"] > 0
