"""Real devices over SSH: a real OpenSSH server on a loopback port (tests/sshd.py) is the "board";
its interpreter is a real python with numpy and a TFLite runtime. edgec reaches it with the system
ssh/scp exactly as it reaches a Raspberry Pi: bench with device facts, build with device numbers
beside the estimate, parity on the device, a board running tflite-runtime 2.14, and the errors
(unreachable, wrong key, no runtime, no python, a runner crash, a time-out) each within its limit."""

from __future__ import annotations

import glob
import json
import os
import subprocess
import sys
import time
from pathlib import Path

import pytest
import torch
from torch import nn

import edgec
from sshd import Sshd

PY = sys.executable          # the board's python: the project's venv (numpy + ai-edge-litert + tflite-runtime)
EDGEC = [sys.executable, "-m", "edgec.cli.main"]
QUICK = ["--warmup", "0.1", "--min-runs", "20", "--min-seconds", "0.3"]


class HeadNet(nn.Module):
    """Conv + a Linear big enough (32x256) for dynamic-range quantization (FULLY_CONNECTED v12 in TF 2.19)."""

    def __init__(self):
        super().__init__()
        self.body = nn.Sequential(nn.Conv2d(3, 16, 3, 2, 1), nn.ReLU6(), nn.Conv2d(16, 32, 1), nn.ReLU6())
        self.head = nn.Linear(32, 256)

    def forward(self, x):
        return self.head(self.body(x).mean(dim=(2, 3)))


@pytest.fixture(scope="module")
def board(tmp_path_factory):
    with Sshd(tmp_path_factory.mktemp("sshd")) as s:
        old = os.environ.get("EDGEC_SSH_OPTIONS")
        os.environ["EDGEC_SSH_OPTIONS"] = s.env["EDGEC_SSH_OPTIONS"]  # for the in-process edgec.build
        try:
            yield s
        finally:
            if old is None:
                os.environ.pop("EDGEC_SSH_OPTIONS", None)
            else:
                os.environ["EDGEC_SSH_OPTIONS"] = old


def _python_without(tmp: Path, blocked: tuple[str, ...]) -> str:
    """A board interpreter where ``blocked`` modules do not import (a real python; a sitecustomize
    on its path makes the import fail as it does on a board where the package is not installed)."""
    site = tmp / ("site-" + "-".join(blocked))
    site.mkdir(parents=True, exist_ok=True)
    (site / "sitecustomize.py").write_text("import sys\n" + "".join(f"sys.modules[{m!r}] = None\n" for m in blocked))
    wrapper = tmp / f"python-without-{'-'.join(blocked)}"
    wrapper.write_text(f"#!/bin/sh\nPYTHONPATH={site} exec {PY} \"$@\"\n")
    wrapper.chmod(0o755)
    return str(wrapper)


@pytest.fixture(scope="module")
def built(board, tmp_path_factory, cache_dir):
    """One build for rpi4 with the board as --device and --parity-on-device."""
    d = tmp_path_factory.mktemp("devbuild")
    torch.manual_seed(0)
    edgec.save_torchscript(HeadNet().eval(), (torch.randn(1, 3, 32, 32),), d / "net.pt")
    cfg = edgec.BuildConfig(model=str(d / "net.pt"), target="rpi4", out=str(d / "out"), cache_dir=str(cache_dir),
                            variants=("fp32", "dynamic_int8"), synthetic_validation=True,
                            device={"url": board.url, "python": PY, "key": str(board.key), "parity": True})
    return edgec.build(cfg)


def _bench(board, model, *extra, key=None, timeout=240):
    t0 = time.monotonic()
    p = subprocess.run([*EDGEC, "bench", str(model), "--target", "rpi4", "--device", board.url,
                        "--device-key", str(key or board.key), *QUICK, *extra], capture_output=True, text=True,
                       env=board.env, timeout=timeout)
    return p, time.monotonic() - t0


def _leftovers() -> set[str]:
    return set(glob.glob("/tmp/edgec-run.*"))  # the board is this machine: its per-run dirs land in /tmp


def test_bench_on_the_board_returns_percentiles_and_device_facts(board, built):
    before = _leftovers()
    model = built.out / "model_fp32.tflite"
    p, _ = _bench(board, model, "--device-python", PY, "--json")
    assert p.returncode == 0, p.stderr
    r = json.loads(p.stdout)
    assert r["measured_on"] == board.url and r["available"]
    assert 0 < r["p50_ms"] <= r["p90_ms"] <= r["p99_ms"] and r["runs"] >= 20
    assert len(r["samples_ms"]) == min(r["runs"], 10_000) or r["samples_kept"].startswith("every")  # raw samples
    m = r["conditions"]["machine"]
    assert m["device"] == board.url and m["transport"].startswith("ssh")
    assert m["cpu"] and m["cores"] == os.cpu_count() and "governor" in m
    assert "thermal_before_c" in m and "thermal_after_c" in m and m["python_executable"] == PY
    c = r["conditions"]
    assert c["runtime"] == "ai-edge-litert" and c["runtime_version"] == m["runtime_version"]
    assert c["threads"] == min(4, os.cpu_count())  # rpi4's 4 threads, capped at the board's cores
    assert r["compat"]["on_device"].startswith("ai-edge-litert") and r["compat"]["load"]["where"] == board.url
    assert r["budgets"]["latency"]["basis"] == f"measured p50 on {board.url}"
    assert _leftovers() == before  # the per-run temp dir is removed


def test_compat_runs_against_the_boards_actual_runtime(board, built, tmp_path):
    """A board whose python has only tflite-runtime 2.14: the fp32 model runs there; the dynamic-int8
    one cannot load (FULLY_CONNECTED v12), a clean error naming the op; compat uses 2.14.0."""
    old_board = _python_without(tmp_path, ("ai_edge_litert",))
    p, _ = _bench(board, built.out / "model_fp32.tflite", "--device-python", old_board, "--json")
    assert p.returncode == 0, p.stderr
    r = json.loads(p.stdout)
    assert r["conditions"]["runtime"] == "tflite-runtime" and r["conditions"]["runtime_version"] == "2.14.0"
    assert r["compat"]["runtime_version"] == "2.14.0" and r["compat"]["ok"]
    p, secs = _bench(board, built.out / "model_dynamic_int8.tflite", "--device-python", old_board)
    assert p.returncode == 4, p.stderr
    assert "tflite-runtime 2.14.0 cannot load the model" in p.stderr and "FULLY_CONNECTED" in p.stderr
    assert len(p.stderr.strip().splitlines()) == 1


def test_build_puts_device_numbers_beside_the_estimate(board, built):
    b = built.manifest["bench"]["fp32"]
    assert b["estimate"]["p50_ms"] is not None and b["p50_ms"] is not None  # the estimate and the host run stay
    dev = b["device"]
    assert dev["measured_on"] == board.url and dev["p50_ms"] > 0 and "estimate" not in dev
    assert dev["conditions"]["machine"]["device"] == board.url
    i8 = built.manifest["bench"]["dynamic_int8"]["device"]
    assert i8["available"] and i8["compat"]["load"]["loaded"]  # the venv board runs ai-edge-litert 2.1
    report = (built.out / "report.md").read_text()
    assert f"measured on {board.url}" in report and "estimated p50 on" in report
    html = (built.out / "report.html").read_text()
    assert f"measured on {board.url}" in html and "estimated p50 on target" in html
    from edgec.report.summary import render_summary

    text = render_summary(built.manifest, built.out)
    assert f"MEASURED on {board.url}" in text and "estimated" in text


def test_parity_on_device_adds_the_device_rows_to_the_ledger(board, built):
    stages = {s["stage"]: s for s in built.manifest["parity"]["stages"]}
    for v in ("fp32", "dynamic_int8"):
        row = stages[f"tflite:{v} on {board.url}"]
        assert row["previous"] == f"tflite:{v}" and row["variant"] == v and row["ok"], row
        assert board.url in row["runtime"] and "ai-edge-litert" in row["runtime"]
        out = row["outputs"][0]
        assert out["cosine"] > 0.99 and out["vs_previous"] is not None
    fp32 = stages[f"tflite:fp32 on {board.url}"]["outputs"][0]
    host = stages["tflite:fp32"]["outputs"][0]
    assert fp32["vs_previous"]["max_abs"] <= 1e-5  # same runtime, same inputs: the host's numbers
    assert fp32["max_abs"] == pytest.approx(host["max_abs"], abs=1e-5)
    order = [s["stage"] for s in built.manifest["parity"]["stages"]]
    assert order.index(f"tflite:fp32 on {board.url}") == order.index("tflite:fp32") + 1


def test_unreachable_port_is_a_clean_error_within_the_timeout(board, built):
    from sshd import free_port

    model = built.out / "model_fp32.tflite"
    t0 = time.monotonic()
    p = subprocess.run([*EDGEC, "bench", str(model), "--target", "rpi4", "--device",
                        f"ssh://{board.user}@127.0.0.1:{free_port()}", "--device-key", str(board.key), *QUICK],
                       capture_output=True, text=True, env=board.env, timeout=120)
    assert p.returncode == 20 and time.monotonic() - t0 < 60
    assert "cannot reach the device" in p.stderr and "Connection refused" in p.stderr
    assert len(p.stderr.strip().splitlines()) == 1 and "Traceback" not in p.stderr


def test_a_host_that_never_answers_is_not_a_hang(board, built):
    """A port that accepts TCP but never sends the SSH banner: ConnectTimeout ends it (exit 20)."""
    import socket
    import threading

    srv = socket.socket()
    srv.bind(("127.0.0.1", 0))
    srv.listen(5)
    held: list = []
    threading.Thread(target=lambda: [held.append(srv.accept()) for _ in range(3)], daemon=True).start()
    t0 = time.monotonic()
    p = subprocess.run([*EDGEC, "bench", str(built.out / "model_fp32.tflite"), "--target", "rpi4", "--device",
                        f"ssh://{board.user}@127.0.0.1:{srv.getsockname()[1]}", *QUICK], capture_output=True,
                       text=True, env=board.env, timeout=120)
    srv.close()
    assert p.returncode == 20 and time.monotonic() - t0 < 45, p.stderr
    assert "timed out during banner exchange" in p.stderr and len(p.stderr.strip().splitlines()) == 1


def test_wrong_key_is_an_auth_error(board, built):
    p, secs = _bench(board, built.out / "model_fp32.tflite", "--device-python", PY, key=board.wrong_key)
    assert p.returncode == 21 and secs < 60, p.stderr
    assert "refused the login" in p.stderr and "Permission denied" in p.stderr
    assert len(p.stderr.strip().splitlines()) == 1


def test_board_without_a_tflite_runtime(board, built, tmp_path):
    bare = _python_without(tmp_path, ("ai_edge_litert", "tflite_runtime"))
    p, secs = _bench(board, built.out / "model_fp32.tflite", "--device-python", bare)
    assert p.returncode == 22 and secs < 60, p.stderr
    assert "no TFLite runtime" in p.stderr and "ai_edge_litert" in p.stderr and "tflite_runtime" in p.stderr
    assert len(p.stderr.strip().splitlines()) == 1
    p, _ = _bench(board, built.out / "model_fp32.tflite", "--device-python", "/nonexistent/python3")
    assert p.returncode == 22 and "no python at '/nonexistent/python3'" in p.stderr, p.stderr


def test_runner_crash_and_timeout(board, built, tmp_path):
    crash = tmp_path / "crashing-python"
    crash.write_text("#!/bin/sh\nkill -SEGV $$\n")
    crash.chmod(0o755)
    p, secs = _bench(board, built.out / "model_fp32.tflite", "--device-python", str(crash))
    assert p.returncode == 24 and secs < 60, p.stderr
    assert "runner on the board" in p.stderr and len(p.stderr.strip().splitlines()) == 1
    t0 = time.monotonic()
    p = subprocess.run([*EDGEC, "bench", str(built.out / "model_fp32.tflite"), "--target", "rpi4", "--device",
                        board.url, "--device-key", str(board.key), "--device-python", PY, "--device-timeout", "3",
                        "--min-seconds", "60", "--warmup", "0.1"], capture_output=True, text=True, env=board.env,
                       timeout=120)
    assert p.returncode == 23 and time.monotonic() - t0 < 40, p.stderr
    assert "time limit" in p.stderr and len(p.stderr.strip().splitlines()) == 1


def test_device_pool_fans_out_over_matching_boards(board, built, tmp_path):
    pool = tmp_path / "devices.yaml"
    pool.write_text(f"""devices:
  - {{name: pi-a, url: "{board.url}", target: rpi4, python: "{PY}", key: "{board.key}"}}
  - {{name: pi-b, url: "{board.url}", target: rpi4, python: "{PY}", key: "{board.key}"}}
  - {{name: phone, url: "adb://SERIAL123", target: android-arm64-cpu}}
""")
    env = {**board.env, "EDGEC_LOCK_DIR": str(tmp_path / "locks")}
    p = subprocess.run([*EDGEC, "bench", str(built.out / "model_fp32.tflite"), "--target", "rpi4", "--device-pool",
                        str(pool), *QUICK, "--json"], capture_output=True, text=True, env=env, timeout=300)
    assert p.returncode == 0, p.stderr
    r = json.loads(p.stdout)
    assert [b["board"] for b in r["boards"]] == ["pi-a", "pi-b"] and r["ok"]  # the phone is another target
    a, b = (x["result"] for x in r["boards"])
    assert a["measured_on"] == b["measured_on"] == board.url and a["p50_ms"] > 0 and b["p50_ms"] > 0
    assert len(list((tmp_path / "locks").glob("*.lock"))) == 1  # one lock per real board (both names, one URL)


def test_pool_runs_one_job_per_board_at_a_time(tmp_path, monkeypatch):
    from edgec.bench import pool

    monkeypatch.setenv("EDGEC_LOCK_DIR", str(tmp_path / "locks"))
    boards = [pool.Board("a", "rpi4", {"url": "ssh://pi@a"}), pool.Board("b", "rpi4", {"url": "ssh://pi@b"}),
              pool.Board("a2", "rpi4", {"url": "ssh://pi@a"})]  # a2 is board a under another name
    spans: list = []

    def job(board, i):
        t0 = time.monotonic()
        time.sleep(0.2)
        spans.append((board.spec["url"], t0, time.monotonic()))
        return {"i": i}

    res = pool.run_jobs(boards, list(range(6)), job)
    assert [r["result"]["i"] for r in res] == list(range(6))
    for url in ("ssh://pi@a", "ssh://pi@b"):
        mine = sorted((s, e) for u, s, e in spans if u == url)
        assert all(e1 <= s2 for (_, e1), (s2, _) in zip(mine, mine[1:])), f"{url} ran two jobs at once"
    assert {r["board"] for r in res} >= {"a", "b"}


def test_device_flags_that_cannot_work_are_refused_before_anything_runs(tmp_path):
    from edgec.pipeline.config import BenchConfig
    from edgec.errors import UsageError

    with pytest.raises(UsageError, match="ssh://"):
        BenchConfig(artifact="m.tflite", device={"url": "pi@host"})
    with pytest.raises(UsageError, match="benchmark_model returns no outputs"):
        edgec.BuildConfig(model="m.pt", device={"url": "adb://S1", "parity": True})
    with pytest.raises(UsageError, match="--device-pool"):
        BenchConfig(artifact="m.tflite", device={"url": "ssh://pi@h"}, device_pool="devices.yaml")
    p = subprocess.run([*EDGEC, "bench", "m.tflite", "--device-key", "k"], capture_output=True, text=True, timeout=60)
    assert p.returncode == 2 and "--device-key needs --device URL" in p.stderr


def test_pool_file_errors_name_the_field(tmp_path):
    from edgec.bench.pool import load_pool
    from edgec.errors import InputError

    bad = tmp_path / "devices.yaml"
    bad.write_text("devices:\n  - {name: x, url: ssh://pi@h}\n")
    with pytest.raises(InputError, match=r"devices\[0\].*name, url and target"):
        load_pool(bad)
    bad.write_text("devices:\n  - {name: x, url: ssh://pi@h, target: rpi4, colour: red}\n")
    with pytest.raises(InputError, match="unknown field"):
        load_pool(bad)


def test_board_cpu_from_a_real_raspberry_pi_cpuinfo():
    """/proc/cpuinfo as published from a Pi 4 on 64-bit Raspberry Pi OS (the file names its source)."""
    from edgec.bench.device_runner import cpu_model

    text = (Path(__file__).parent / "data" / "cpuinfo" / "rpi4_aarch64.txt").read_text()
    assert text.startswith("# source: https://github.com/")
    assert cpu_model(text) == "Raspberry Pi 4 Model B Rev 1.1 (Cortex-A72)"  # aarch64 prints no 'model name'
    assert cpu_model("processor\t: 0\nmodel name\t: AMD EPYC\n") == "AMD EPYC"
