"""edgec bench: the timing loop, statistics, a real measurement of a tiny built model, the build's
bench section (cached on a warm rebuild), runtime compatibility, delegate coverage and desktop-gpu."""

from __future__ import annotations

import json
import os

import numpy as np
import pytest
import torch
from torch import nn

import edgec
from edgec.bench import LoopSettings, bench_artifact, variant_of
from edgec.bench.stats import summarize
from edgec.bench.timing import measure

SHORT = LoopSettings(warmup_s=0.1, min_runs=15, min_seconds=0.3, max_seconds=20)


class SmallNet(nn.Module):
    """Conv, depthwise, pointwise and a Linear big enough (32x256) for dynamic-range quantization."""

    def __init__(self):
        super().__init__()
        self.body = nn.Sequential(nn.Conv2d(3, 16, 3, 2, 1), nn.ReLU6(), nn.Conv2d(16, 16, 3, 1, 1, groups=16),
                                  nn.ReLU6(), nn.Conv2d(16, 32, 1), nn.ReLU6())
        self.head = nn.Linear(32, 256)

    def forward(self, x):
        return self.head(self.body(x).mean(dim=(2, 3)))


@pytest.fixture(scope="module")
def built(tmp_path_factory, cache_dir):
    d = tmp_path_factory.mktemp("bench")
    torch.manual_seed(0)
    edgec.save_torchscript(SmallNet().eval(), (torch.randn(1, 3, 224, 224),), d / "net.pt")
    cfg = edgec.BuildConfig(model=str(d / "net.pt"), target="rpi4", out=str(d / "out"), cache_dir=str(cache_dir),
                            variants=("fp32", "dynamic_int8"), synthetic_validation=True)
    return cfg, edgec.build(cfg)


def test_timing_loop_warms_up_by_time_and_meets_both_minimums():
    calls = []
    t = measure(lambda: calls.append(1), LoopSettings(warmup_s=0.05, min_runs=7, min_seconds=0.02))
    assert t.warmup_s >= 0.05 and t.warmup_runs >= 1
    assert len(t.samples_ns) >= 7 and t.loop_s >= 0.02
    assert len(calls) == t.warmup_runs + len(t.samples_ns)
    slow = measure(lambda: None, LoopSettings(warmup_s=0, min_runs=10 ** 9, min_seconds=0, max_seconds=0.05))
    assert 0.05 <= slow.loop_s < 1.0  # max_seconds caps a loop that would never meet min_runs


def test_summary_statistics_match_numpy():
    x = np.arange(1, 101, dtype=float)
    s = summarize(x)
    assert s["p50_ms"] == pytest.approx(50.5) and s["p90_ms"] == pytest.approx(np.percentile(x, 90))
    assert s["p99_ms"] == pytest.approx(np.percentile(x, 99), abs=1e-4) and s["min_ms"] == 1 and s["runs"] == 100
    assert s["cv"] == pytest.approx(np.std(x, ddof=1) / np.mean(x), abs=1e-4)


def test_build_records_bench_per_variant(built):
    _, result = built
    bench = result.manifest["bench"]
    assert set(bench) == {"fp32", "dynamic_int8"}
    for variant, r in bench.items():
        assert r["variant"] == variant and r["available"]
        assert 0 < r["min_ms"] <= r["p50_ms"] <= r["p90_ms"] <= r["p99_ms"]
        assert r["runs"] >= 20 and len(r["samples_ms"]) == min(r["runs"], 10_000)  # raw samples kept
        c = r["conditions"]
        assert c["threads"] == min(4, os.cpu_count()) and c["runtime"] == "ai-edge-litert"
        assert c["machine"]["cores"] == os.cpu_count() and "synthetic" in c["input_source"]
        e = r["estimate"]
        assert e["estimated"] is True and e["device"] == "Raspberry Pi 4 (Cortex-A72)"
        assert e["low_ms"] <= e["p50_ms"] <= e["high_ms"]
        assert all(ref["source"] for ref in e["references"])
        assert 0 < r["gzip_bytes"] and r["size_bytes"] == os.path.getsize(result.out / r["artifact"])


def test_dynamic_range_variant_is_incompatible_with_tflite_runtime_214(built, tmp_path):
    """rpi4 names ai-edge-litert 2.1.0, which loads the build's dynamic-range model (the build's own
    check is a real load); a board still on tflite-runtime 2.14 (a profile saying so) cannot: the op
    table names FULLY_CONNECTED v12 and the load with tflite-runtime 2.14 here fails on it."""
    import yaml

    from edgec.targets import _profiles_dir, load_target
    from edgec.targets.compat import check_artifact
    from edgec.targets.defaults import unloadable

    _, result = built
    here = result.manifest["bench"]["dynamic_int8"]["compat"]
    assert here["ok"] and here["load"]["package"] == "ai-edge-litert" and here["load"]["loaded"]
    prof = yaml.safe_load(_profiles_dir().joinpath("rpi4.yaml").read_text())
    prof["runtime"].update(on_device="tflite-runtime 2.14.0", on_device_package="tflite-runtime",
                           on_device_version="2.14.0")
    (tmp_path / "old-pi.yaml").write_text(yaml.safe_dump(prof))
    old_pi = load_target(str(tmp_path / "old-pi.yaml"))
    path = result.out / "model_dynamic_int8.tflite"
    compat = check_artifact(path, old_pi)
    assert not compat["ok"]
    assert {(t["op"], t["version"], t["needs"]) for t in compat["too_new"]} == {("FULLY_CONNECTED", 12, "2.17.0")}
    load = compat["load"]
    assert load["attempted"] and not load["loaded"] and "FULLY_CONNECTED" in load["error"]
    assert check_artifact(result.out / "model_fp32.tflite", old_pi)["ok"]
    # The check the pipeline runs on built defaults: from the file alone (no load), the same op named.
    (row,) = unloadable(old_pi, {"fp32": result.out / "model_fp32.tflite", "dynamic_int8": path})
    assert row["variant"] == "dynamic_int8" and "FULLY_CONNECTED v12 needs 2.17.0" in row["reason"]
    assert unloadable(load_target("rpi4"), {"dynamic_int8": path}, result.manifest["bench"]) == []


def test_warm_rebuild_reuses_the_measurement_and_no_bench_skips_it(built):
    cfg, first = built
    again = edgec.build(cfg)
    assert all(r["cached"] for r in again.manifest["bench"].values())
    assert again.manifest["bench"]["fp32"]["p50_ms"] == first.manifest["bench"]["fp32"]["p50_ms"]
    from dataclasses import replace

    assert "bench" not in edgec.build(replace(cfg, bench=False)).manifest


def test_bench_artifact_here_and_estimated_elsewhere(built):
    _, result = built
    path = result.out / "model_fp32.tflite"
    assert variant_of(path) == "fp32" and variant_of(result.out / "model_dynamic_int8.tflite") == "dynamic_int8"
    here = bench_artifact(path, "desktop-cpu", loop=SHORT, compat=False)
    assert "estimate" not in here and here["runs"] >= 15 and here["conditions"]["threads"] == os.cpu_count()
    gpu = bench_artifact(path, "android-gpu", loop=SHORT, compat=False)
    assert gpu["estimate"]["estimated"] and gpu["estimate"]["runtime"] == "TFLite GPU delegate"
    assert any("gpu delegate does not exist" in n for n in gpu["conditions"]["notes"])
    assert gpu["delegate_coverage"]["ops_total"] > 0


def test_delegate_coverage_of_a_hybrid_model(built):
    from edgec.targets.delegates import coverage_for
    from edgec.targets import load_target

    _, result = built
    cov = coverage_for(result.out / "model_dynamic_int8.tflite", load_target("android-gpu"))
    fc = [r for r in cov["cpu_ops"] if r["op"] == "FULLY_CONNECTED"]
    assert fc and any("hybrid" in why for why in fc[0]["reasons"])
    assert 0 < cov["share_macs_on_cpu"] <= 1 and cov["ops_on_cpu"] >= 1
    assert coverage_for(result.out / "model_fp32.tflite", load_target("rpi4")) is None  # a CPU profile


def test_desktop_gpu_without_a_gpu_says_so(built, capsys):
    from edgec.bench.runtimes import cuda_status
    from edgec.cli.main import main

    _, result = built
    available, _ = cuda_status()
    if available:
        pytest.skip("a GPU is present: desktop-gpu is measured, not refused")
    onnx = result.out / "model.onnx"
    rec = bench_artifact(onnx, "desktop-gpu", loop=SHORT)
    assert rec["available"] is False and rec["reason"].startswith("no GPU here")
    assert main(["bench", str(onnx), "--target", "desktop-gpu"]) == 0
    assert "no GPU here" in capsys.readouterr().out
    assert main(["bench", str(result.out / "model_fp32.tflite"), "--target", "desktop-gpu"]) == 2
