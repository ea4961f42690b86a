"""ADB: the benchmark_model parser on REAL published outputs (tests/data/benchmark_model, each file
names its source), and the adb calls edgec makes, checked against a fake ``adb`` on PATH that logs
its arguments (no phone is reachable here; the fake answers benchmark runs with a recorded real
output). What was tested only this way is stated in the README's "Real devices"."""

from __future__ import annotations

import json
import os
import sys
from pathlib import Path

import pytest

from edgec.bench.benchmark_model import parse
from edgec.errors import DeviceCrashError

DATA = Path(__file__).parent / "data" / "benchmark_model"


def _text(name: str) -> str:
    text = (DATA / name).read_text()
    assert text.startswith("# source: https://github.com/")  # every recorded output names where it was published
    return text


def test_parser_on_a_real_cpu_run():
    r = parse(_text("mi11_yolov5s_cpu.txt"))
    # count=50 first=249042 curr=250889 min=247067 max=254474 avg=249684 std=1442
    assert r["runs"] == 50 and r["mean_ms"] == pytest.approx(249.684) and r["std_ms"] == pytest.approx(1.442)
    assert r["min_ms"] == pytest.approx(247.067) and r["max_ms"] == pytest.approx(254.474)
    assert r["init_ms"] == pytest.approx(16.242) and r["first_inference_ms"] == pytest.approx(360.262)
    assert r["warmup_avg_ms"] == pytest.approx(304.586)
    assert r["memory"]["overall_mb"] == pytest.approx(138.809) and "Peak memory footprint" in r["memory"]["method"]
    assert r["p50_ms"] is None and r["p90_ms"] is None and r["p99_ms"] is None  # it prints no percentiles here
    assert "op_profile" not in r


def test_parser_on_a_real_op_profiling_run():
    r = parse(_text("riscv_mobilenet_v1_op_profiling.txt"))
    # the timed loop's line, not the warm-up's (count=1) nor the profiler's "Timings (microseconds)" line
    assert r["runs"] == 50 and r["mean_ms"] == pytest.approx(2950.34) and r["min_ms"] == pytest.approx(2727.568)
    assert r["warmup_runs"] == 1 and r["threads"] == 4 and r["graph"] == "./mobilenet_v1_1.0_224.tflite"
    assert r["warmup_avg_ms"] == pytest.approx(3512.39)  # "3.51239e+06" us
    ops = r["op_profile"]
    assert len(ops["nodes"]) == 31  # "Number of nodes executed: 31"
    first = ops["nodes"][0]
    assert first["op"] == "CONV_2D" and first["avg_ms"] == pytest.approx(60.957)
    assert first["name"] == "[MobilenetV1/MobilenetV1/Conv2d_0/Relu6]:0"
    assert ops["nodes"][-1]["op"] == "SOFTMAX"
    by_type = {t["op"]: t for t in ops["by_type"]}
    assert by_type["CONV_2D"]["count"] == 15 and by_type["DEPTHWISE_CONV_2D"]["count"] == 13
    assert by_type["CONV_2D"]["percent"] == pytest.approx(89.897)
    assert sum(n["op"] == "CONV_2D" for n in ops["nodes"]) == 15


def test_parser_refuses_a_failed_run():
    failed = ("Loaded model /data/local/tmp/m.tflite\nERROR: Node number 248 (TfLiteNnapiDelegate) failed to prepare.\n"
              "Failed to apply NNAPI delegate.\nBenchmarking failed.\n")
    with pytest.raises(DeviceCrashError, match="no timings.*Failed to apply NNAPI delegate"):
        parse(failed)


FAKE_ADB = r'''#!{python}
"""A fake adb: logs argv, answers like a phone would; benchmark runs print a recorded real output."""
import json, os, sys
args = sys.argv[1:]
with open(os.environ["FAKE_ADB_LOG"], "a") as f:
    f.write(json.dumps(args) + "\n")
mode = os.environ.get("FAKE_ADB_MODE", "ok")
if mode == "missing":
    sys.stderr.write("adb: device '%s' not found\n" % args[1]); sys.exit(1)
if mode == "unauthorized":
    sys.stderr.write("adb: device unauthorized.\n"); sys.exit(1)
cmd = args[2:]
if cmd[0] == "push":
    sys.exit(0)
script = cmd[1]
if script.startswith("for p in"):
    print("prop ro.product.manufacturer=Xiaomi\nprop ro.product.model=M2011K2G\nprop ro.build.version.release=13")
    print("prop ro.build.version.sdk=33\nprop ro.product.cpu.abi=arm64-v8a\ncores=8\ngovernor=schedutil")
    print("thermal cpu-0-0-usr=41000\nHardware\t: Qualcomm Technologies, Inc SM8350")
elif script.startswith("mktemp"):
    print("/data/local/tmp/edgec.AbCd1234")
elif script.startswith("command -v"):
    if mode == "nobinary":
        sys.exit(1)
    print("/data/local/tmp/benchmark_model")
elif "--graph=" in script:
    sys.stdout.write(open(os.environ["FAKE_ADB_OUTPUT"]).read())
elif script.startswith("for z in"):
    print("cpu-0-0-usr=47000")
'''


@pytest.fixture
def fake_adb(tmp_path, monkeypatch):
    bin_dir = tmp_path / "bin"
    bin_dir.mkdir()
    adb = bin_dir / "adb"
    adb.write_text(FAKE_ADB.replace("{python}", sys.executable))
    adb.chmod(0o755)
    log = tmp_path / "adb.log"
    monkeypatch.setenv("PATH", f"{bin_dir}{os.pathsep}{os.environ['PATH']}")
    monkeypatch.setenv("FAKE_ADB_LOG", str(log))
    monkeypatch.setenv("FAKE_ADB_OUTPUT", str(DATA / "mi11_yolov5s_cpu.txt"))
    return lambda: [json.loads(x) for x in log.read_text().splitlines()] if log.exists() else []


@pytest.fixture(scope="module")
def tflite(tmp_path_factory, cache_dir):
    """A real tiny .tflite built by edgec (the same model and cache as test_devices.py)."""
    import torch

    import edgec
    from test_devices import HeadNet

    d = tmp_path_factory.mktemp("adb")
    torch.manual_seed(0)
    edgec.save_torchscript(HeadNet().eval(), (torch.randn(1, 3, 32, 32),), d / "net.pt")
    edgec.build(edgec.BuildConfig(model=str(d / "net.pt"), target="rpi4", out=str(d / "out"), bench=False,
                                  cache_dir=str(cache_dir), variants=("fp32",), synthetic_validation=True))
    return d / "out" / "model_fp32.tflite"


def test_adb_bench_builds_the_commands_and_fills_the_record(fake_adb, tflite):
    from edgec.bench import LoopSettings, bench_artifact
    from edgec.bench.adb import AdbDevice

    dev = AdbDevice("adb://R5CT1234")
    rec = bench_artifact(tflite, "android-arm64-cpu", loop=LoopSettings(0.5, 30, 2.0, 60.0), device=dev)
    calls = fake_adb()
    assert all(c[:2] == ["-s", "R5CT1234"] for c in calls)
    pushes = [c for c in calls if c[2] == "push"]
    assert pushes == [["-s", "R5CT1234", "push", str(tflite), "/data/local/tmp/edgec.AbCd1234/model.tflite"]]
    bench = next(c for c in calls if c[2] == "shell" and "--graph=" in c[3])[3].split()
    assert bench[:2] == ["/data/local/tmp/benchmark_model", "--graph=/data/local/tmp/edgec.AbCd1234/model.tflite"]
    assert {"--num_runs=30", "--min_secs=2", "--warmup_min_secs=0.5", "--max_secs=60", "--use_xnnpack=true"} <= set(bench)
    assert calls[-1][2:] == ["shell", "rm -rf /data/local/tmp/edgec.AbCd1234"]  # the per-run dir is removed
    assert rec["measured_on"] == "adb://R5CT1234" and rec["mean_ms"] == pytest.approx(249.684) and rec["runs"] == 50
    m = rec["conditions"]["machine"]
    assert m["model"] == "Xiaomi M2011K2G" and m["cores"] == 8 and m["governor"] == "schedutil"
    assert m["cpu"] == "Qualcomm Technologies, Inc SM8350" and m["android"] == "13"
    assert m["thermal_before_c"] == {"cpu-0-0-usr": 41.0} and m["thermal_after_c"] == {"cpu-0-0-usr": 47.0}
    assert rec["conditions"]["threads"] == 4 and rec["samples_ms"] == [] and rec["p90_ms"] is None
    from edgec.bench.report import render

    text = render(rec)
    assert "MEASURED ON THE DEVICE adb://R5CT1234" in text and "p90 n/a" in text


def test_adb_pushes_the_given_benchmark_binary(fake_adb, tflite, tmp_path):
    from edgec.bench import LoopSettings, bench_artifact
    from edgec.bench.adb import AdbDevice

    binary = tmp_path / "benchmark_model"
    binary.write_bytes(b"\x7fELF fake")
    bench_artifact(tflite, "android-arm64-cpu", loop=LoopSettings(0.1, 5, 0.1, 10.0),
                   device=AdbDevice("adb://S1", str(binary)))
    calls = fake_adb()
    assert ["-s", "S1", "push", str(binary), "/data/local/tmp/edgec.AbCd1234/benchmark_model"] in calls
    assert ["-s", "S1", "shell", "chmod 755 /data/local/tmp/edgec.AbCd1234/benchmark_model"] in calls
    assert not any("command -v" in c[-1] for c in calls)


@pytest.mark.parametrize("mode, code, text", [("missing", 20, "cannot reach the phone"),
                                              ("unauthorized", 21, "has not authorized"),
                                              ("nobinary", 22, "benchmark_model is not on the phone")])
def test_adb_errors(fake_adb, tflite, monkeypatch, mode, code, text):
    from edgec.bench import LoopSettings, bench_artifact
    from edgec.bench.adb import AdbDevice
    from edgec.errors import DeviceError

    monkeypatch.setenv("FAKE_ADB_MODE", mode)
    with pytest.raises(DeviceError, match=text) as info:
        bench_artifact(tflite, "android-arm64-cpu", loop=LoopSettings(0.1, 5, 0.1, 10.0), device=AdbDevice("adb://S1"))
    assert info.value.exit_code == code
