"""The latency estimator: reference architectures match the published MACs, leave-one-out errors
are reported with their sources, estimates fall in the published numbers' band and say so."""

from __future__ import annotations

import json

import pytest

from edgec.bench.estimate import all_rows, estimate, loo_report
from edgec.bench.estimate_refs import REFERENCE_MODELS, load_table, reference_ops
from edgec.formats.opgraph import OpCost, features
from edgec.targets import load_target

# MobileNet v3 Small: the paper's 56 M MACs; the table's source lists 66 M.
MAC_TOLERANCE = {"MobileNet v3 Small 1.0": 0.16}


@pytest.mark.parametrize("model", sorted({r.model for r in load_table()}))
def test_reference_architectures_match_published_macs(model):
    published = next(r.macs_millions for r in load_table() if r.model == model)
    ours = features(list(reference_ops(model, "fp32"))).macs / 1e6
    assert ours == pytest.approx(published, rel=MAC_TOLERANCE.get(model, 0.06))


def test_every_reference_row_has_a_source_and_a_describable_model():
    for r in load_table():
        assert r.source and r.model in REFERENCE_MODELS and r.latency_ms > 0


def test_leave_one_out_is_reported_per_runtime_class(capsys):
    from edgec.cli.main import main

    rep = loo_report()
    cpu = rep["cpu"]
    assert cpu["predicted"] >= 20
    assert cpu["median_abs_error_pct"] < 20 and cpu["max_abs_error_pct"] < 40
    assert all(r["source"] for r in cpu["rows"])
    assert main(["estimate", "--loo"]) == 0
    out = capsys.readouterr().out
    assert "leave-one-out" in out and "google/XNNPACK README.md" in out


@pytest.mark.parametrize("target,model,precision,published", [
    ("rpi4", "MobileNet v2 1.0 224", "fp32", 44.0),
    ("rpi4", "MobileNet v1 1.0 224", "fp32", 75.0),
    ("android-arm64-cpu", "EfficientNet-Lite0", "fp32", 12.0),
    ("android-arm64-cpu", "EfficientNet-Lite0", "int8", 6.5),
    ("android-gpu", "EfficientNet-Lite0", "fp16", 6.0),
])
def test_estimates_fall_in_the_published_band(target, model, precision, published):
    e = estimate(features(list(reference_ops(model, precision))), load_target(target), precision)
    assert e["estimated"] is True and e["available"]
    assert e["low_ms"] <= published <= e["high_ms"], e


def test_estimate_without_a_reference_is_labelled_unavailable():
    e = estimate(features([OpCost("CONV_2D", kind="conv", macs=10 ** 8, bytes=10 ** 6)]), load_target("rpi4"), "int8")
    assert e["estimated"] is True and e["available"] is False and e["p50_ms"] is None and "int8" in e["reason"]
    d = estimate(features([]), load_target("desktop-cpu"), "fp32")
    assert d["available"] is False and "reference" in d["reason"]


def test_profile_measurements_join_the_fit(tmp_path):
    import yaml

    from edgec.targets import _profiles_dir

    prof = yaml.safe_load(_profiles_dir().joinpath("rpi4.yaml").read_text())
    prof["name"] = "my-pi"
    prof["reference"] = {"device": "My Pi", "runtime": "TFLite CPU", "threads": 4, "measurements": [
        {"model": "MobileNet v2 1.0 224", "precision": "fp32", "latency_ms": 60, "source": "measured by me, 2026"},
        {"model": "MobileNet v1 1.0 224", "precision": "fp32", "latency_ms": 100, "source": "measured by me, 2026"}]}
    p = tmp_path / "my-pi.yaml"
    p.write_text(yaml.safe_dump(prof))
    t = load_target(str(p))
    assert len(all_rows(t)) == len(load_table()) + 2
    e = estimate(features(list(reference_ops("EfficientNet-Lite0", "fp32"))), t, "fp32")
    assert e["device"] == "My Pi" and {r["source"] for r in e["references"]} == {"measured by me, 2026"}
    assert 40 < e["p50_ms"] < 120
    json.dumps(e)  # the record is plain JSON
