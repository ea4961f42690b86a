"""The quantized variants and the parity ledger on tiny models: int8/int16x8 from calibration data
(cached by its digest and the I/O type), synthetic data only on explicit flags (and marked), an
interpreter abort isolated to its variant, budgets and their overrides, localization of a layer that
quantizes badly."""

from __future__ import annotations

import json

import numpy as np
import pytest
import torch
from torch import nn

import edgec
from edgec.cli.main import main
from edgec.formats.tflite import read_tflite


def _npz(path, n: int, seed: int, shape=(3, 32, 32), name: str = "x"):
    np.savez(path, **{name: np.random.default_rng(seed).standard_normal((n, *shape)).astype(np.float32)})
    return str(path)


@pytest.fixture(scope="module")
def data(tmp_path_factory):
    d = tmp_path_factory.mktemp("data")
    return {"cal": _npz(d / "cal.npz", 24, 1), "val": _npz(d / "val.npz", 6, 2), "cal2": _npz(d / "cal2.npz", 24, 3)}


def _build(models, cache_dir, out, data, *extra, variants="fp32,int8,int16x8", model="cnn.pt"):
    args = ["build", str(models / model), "-o", str(out), "-q", "--no-bench", "--cache-dir", str(cache_dir),
            "--variants", variants, "--validation-data", data["val"], *extra]
    rc = main(args)
    return rc, json.loads((out / "manifest.json").read_text()) if (out / "manifest.json").exists() else None


def _steps(m):
    return {s["variant"]: s for s in m["steps"] if s["name"] == "tf_to_tflite"}


def test_int8_and_int16x8_from_calibration_data(models, cache_dir, tmp_path, data, capsys):
    rc, m = _build(models, cache_dir, tmp_path / "a", data, "--calibration-data", data["cal"], "--quant-io", "int8",
                   "--calibration-samples", "16")
    assert rc == 0, capsys.readouterr().err
    assert m["calibration"]["samples"] == 16 and m["calibration"]["synthetic"] is False
    assert m["calibration"]["source"] == data["cal"]
    int8 = read_tflite(tmp_path / "a" / "model_int8.tflite")
    assert int8.inputs[0].dtype == "int8" and int8.outputs[0].dtype == "int8"
    assert read_tflite(tmp_path / "a" / "model_int16x8.tflite").inputs[0].dtype == "float32"
    q = _steps(m)["int8"]["settings"]["quantization"]
    assert q["io_type"] == "int8" and q["per_channel"] and q["calibration_sha256"] == m["calibration"]["sha256"]
    ledger = {s["stage"]: s for s in m["parity"]["stages"]}
    assert set(ledger) == {"onnx", "saved_model", "tflite:fp32", "tflite:int8", "tflite:int16x8"}
    for name in ("tflite:int8", "tflite:int16x8"):
        st = ledger[name]
        assert st["ok"] and st["previous"] == "tflite:fp32" and st["reference_kernels"]["ok"]
        out = st["outputs"][0]
        assert out["cosine"] > 0.99 and out["samples"] == 6 and "drift" in out and "vs_previous" in out
    assert ledger["tflite:int8"]["budget"] == {"top1_confident": 0.95, "cosine": 0.97}
    assert not m["parity"]["synthetic"] and "6 validation samples" in m["parity"]["inputs"]

    # the cache key holds the calibration digest and the I/O type
    rc, again = _build(models, cache_dir, tmp_path / "b", data, "--calibration-data", data["cal"], "--quant-io",
                       "int8", "--calibration-samples", "16")
    assert rc == 0 and all(s["cached"] for s in again["steps"])
    rc, uint8 = _build(models, cache_dir, tmp_path / "c", data, "--calibration-data", data["cal"], "--quant-io",
                       "uint8", "--calibration-samples", "16", variants="fp32,int8")
    assert rc == 0 and not _steps(uint8)["int8"]["cached"] and _steps(uint8)["fp32"]["cached"]
    assert read_tflite(tmp_path / "c" / "model_int8.tflite").inputs[0].dtype == "uint8"
    rc, other = _build(models, cache_dir, tmp_path / "d", data, "--calibration-data", data["cal2"], "--quant-io",
                       "int8", "--calibration-samples", "16", variants="fp32,int8")
    assert rc == 0 and not _steps(other)["int8"]["cached"]
    assert _steps(other)["int8"]["output_sha256"] != _steps(m)["int8"]["output_sha256"]


def test_synthetic_data_only_on_explicit_flags_and_marked(models, cache_dir, tmp_path, data, capsys):
    args = ["build", str(models / "cnn.pt"), "-q", "--no-bench", "--cache-dir", str(cache_dir), "--variants"]
    assert main([*args, "fp32,int8", "-o", str(tmp_path / "a"), "--validation-data", data["val"]]) == 2
    err = capsys.readouterr().err
    assert "need calibration data" in err and "--synthetic-calibration" in err and not (tmp_path / "a").exists()
    assert main([*args, "fp32", "-o", str(tmp_path / "b")]) == 2
    assert "--synthetic-validation" in capsys.readouterr().err and not (tmp_path / "b").exists()
    assert main([*args, "fp32,int8", "-o", str(tmp_path / "c"), "--synthetic-calibration", "--synthetic-validation",
                 "--calibration-samples", "8", "--parity", "warn"]) == 0
    captured = capsys.readouterr()
    assert "WARNING" in captured.err and "SYNTHETIC" in captured.err
    m = json.loads((tmp_path / "c" / "manifest.json").read_text())
    assert m["calibration"]["synthetic"] is True and m["calibration"]["source"] == "synthetic"
    assert m["parity"]["synthetic"] is True and m["parity"]["inputs"].startswith("synthetic")
    assert m["parity"]["validation"]["synthetic"] is True
    table = captured.out.split("parity (", 1)[1]   # the printed ledger table
    assert table.startswith("synthetic: 8 random samples") and "!! synthetic validation data" in table
    assert "calibration: 8 samples from synthetic (SYNTHETIC" in captured.out


def test_interpreter_abort_is_an_error_for_its_variant_only(models, cache_dir, tmp_path, capsys):
    """litert 2.1.0 aborts (SIGABRT in allocate_tensors) on this transformer's int16x8 model: the
    ledger reports that variant as failed and completes every other stage."""
    args = ["build", str(models / "transformer.pt"), "-o", str(tmp_path / "out"), "-q", "--no-bench",
            "--cache-dir", str(cache_dir), "--variants", "fp32,int8,int16x8", "--synthetic-calibration",
            "--calibration-samples", "8", "--synthetic-validation"]
    assert main(args) == 8
    err = capsys.readouterr().err
    assert "parity budget missed by tflite:int16x8" in err and "SIGABRT" in err
    m = json.loads((tmp_path / "out" / "manifest.json").read_text())
    ledger = {s["stage"]: s for s in m["parity"]["stages"]}
    assert "SIGABRT" in ledger["tflite:int16x8"]["error"] and not ledger["tflite:int16x8"]["ok"]
    assert ledger["tflite:fp32"]["ok"] and ledger["tflite:int8"]["outputs"][0]["cosine"] > 0.9
    assert m["parity"]["introduced_by"] == ["tflite:int16x8"]
    assert (tmp_path / "out" / "model_int16x8.tflite").exists()  # the build is written either way


def test_worker_turns_a_crash_or_hang_into_an_error():
    import sys

    from edgec.runtime.isolated import run_task

    abort = run_task({"task": "tflite_outputs"}, command=[sys.executable, "-c", "import os; os.abort()"])
    assert abort["crashed"] and abort["signal"] == "SIGABRT" and "died with SIGABRT" in abort["error"]
    hang = run_task({"task": "x"}, timeout=1, command=[sys.executable, "-c", "import time; time.sleep(30)"])
    assert hang["crashed"] and "limit" in hang["error"]
    failed = run_task({"task": "x"}, command=[sys.executable, "-c", "raise SystemExit('no such task')"])
    assert failed["crashed"] and "no such task" in failed["error"]


def test_budget_override_fail_and_warn(models, cache_dir, tmp_path, data, capsys):
    args = ["build", str(models / "cnn.pt"), "-q", "--no-bench", "--cache-dir", str(cache_dir), "--variants", "fp32",
            "--validation-data", data["val"], "--budget", "fp32.atol=1e-12"]
    assert main([*args, "-o", str(tmp_path / "a")]) == 8
    err = capsys.readouterr().err
    assert "parity budget missed by onnx" in err and "onnx introduced the error" in err
    m = json.loads((tmp_path / "a" / "manifest.json").read_text())
    onnx = m["parity"]["stages"][0]
    assert onnx["budget"]["atol"] == 1e-12 and onnx["budget_source"].endswith("+ overrides")
    # at 1e-12 every stage adds error of its own (float reassociation, ~1e-7): each one is named
    assert m["parity"]["introduced_by"] == ["onnx", "saved_model", "tflite:fp32"]
    (onnx_loc,) = [loc for loc in m["parity"]["localization"] if loc["stage"] == "onnx"]
    assert onnx_loc["note"].startswith("layer localization is not available")
    assert main([*args, "-o", str(tmp_path / "b"), "--parity", "warn"]) == 0
    m = json.loads((tmp_path / "b" / "manifest.json").read_text())
    assert m["parity"]["ok"] is False and m["parity"]["mode"] == "warn" and "warn" in m["parity"]["verdict"]
    assert "PARITY MISS" in capsys.readouterr().out
    assert main([*args[:-2], "--budget", "int9.top1=1", "-o", str(tmp_path / "c")]) == 2


class LargeRange(nn.Module):
    """conv -> relu -> conv -> exp(10 x): a large-range activation (a few huge values, most small)
    that int8's one scale per tensor cannot hold -> conv -> mean -> linear."""

    def __init__(self):
        super().__init__()
        self.conv1 = nn.Conv2d(3, 16, 3, padding=1)
        self.conv2 = nn.Conv2d(16, 16, 3, padding=1)
        self.conv3 = nn.Conv2d(16, 16, 1)
        self.head = nn.Linear(16, 10)

    def forward(self, x):
        h = torch.exp(10.0 * self.conv2(torch.relu(self.conv1(x))))
        return self.head(torch.relu(self.conv3(h)).mean(dim=(2, 3)))


def test_localization_points_at_the_op_that_quantizes_badly(cache_dir, tmp_path, capsys):
    gen = torch.random.get_rng_state()
    torch.manual_seed(0)
    module = LargeRange().eval()
    torch.random.set_rng_state(gen)
    edgec.save_torchscript(module, (torch.zeros(1, 3, 64, 64),), tmp_path / "lr.pt")
    cal = _npz(tmp_path / "cal.npz", 32, 1, (3, 64, 64))
    val = _npz(tmp_path / "val.npz", 8, 2, (3, 64, 64))
    assert main(["build", str(tmp_path / "lr.pt"), "-o", str(tmp_path / "out"), "--no-bench", "--cache-dir",
                 str(cache_dir), "--variants", "fp32,int8", "--calibration-data", cal, "--validation-data", val,
                 "--budget", "int8.cosine=0.99"]) == 8
    out = capsys.readouterr().out
    m = json.loads((tmp_path / "out" / "manifest.json").read_text())
    assert m["parity"]["introduced_by"] == ["tflite:int8"]
    (loc,) = m["parity"]["localization"]
    assert loc["stage"] == "tflite:int8"
    assert loc["reference_stage"] == "tflite:fp32" and loc["compared"] >= 6 and loc["matched_by_name"] >= 5
    first = loc["first_divergent"]
    assert first["op"] == "EXP" and first["cosine"] < 0.99
    assert loc["largest_snr_drop"]["op"] == "EXP"
    before = [w for w in loc["worst"] if w["index"] < first["index"]]
    assert all(not w["misses"] for w in before)   # every layer before it is within the limit
    assert "first divergent layer" in out and "EXP" in out
    assert loc["layers"][loc["first_divergent_index"]]["op"] == "EXP"   # the per-layer SNR curve, in graph order
    assert [r["index"] for r in loc["layers"]] == sorted(r["index"] for r in loc["layers"])
