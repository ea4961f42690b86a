"""Quiet output (edgec/logs.py): a normal run shows edgec's lines only, none of TensorFlow's, absl's or
TFLite's; ``--debug`` lets them through, the framework children's stderr included."""

from __future__ import annotations

import os
import re
import subprocess
import sys
from pathlib import Path

from edgec import logs
from edgec.runtime import isolated

# What the frameworks printed in a real `edgec build --debug` of a tiny CNN for rpi4 (TF 2.19).
FRAMEWORK_LINES = [
    "WARNING: All log messages before absl::InitializeLog() is called are written to STDERR",
    "E0000 00:00:1796175560.847235   13916 cuda_dnn.cc:8579] Unable to register cuDNN factory: Attempting to "
    "register factory for plugin cuDNN when one has already been registered",
    "2026-12-02 01:39:20.808181: E external/local_xla/xla/stream_executor/cuda/cuda_fft.cc:467] Unable to "
    "register cuFFT factory: Attempting to register factory for plugin cuFFT when one has already been registered",
    "W0000 00:00:1796175560.889396   13916 computation_placer.cc:177] computation placer already registered. "
    "Please check linkage and avoid linking the same target more than once.",
    "2026-12-02 01:39:20.780962: I tensorflow/core/util/port.cc:153] oneDNN custom operations are on. You may see "
    "slightly different numerical results due to floating-point round-off errors from different computation "
    "orders. To turn them off, set the environment variable `TF_ENABLE_ONEDNN_OPTS=0`.",
    "2026-12-02 01:39:20.782303: I external/local_xla/xla/tsl/cuda/cudart_stub.cc:32] Could not find cuda "
    "drivers on your machine, GPU will not be used.",
    "To enable the following instructions: AVX2 AVX512F FMA, in other operations, rebuild TensorFlow with the "
    "appropriate compiler flags.",
    "W0000 00:00:1796175570.226880   13916 tf_tfl_flatbuffer_helpers.cc:365] Ignored output_format.",
    "W0000 00:00:1796175570.226945   13916 tf_tfl_flatbuffer_helpers.cc:368] Ignored drop_control_dependency.",
    "I0000 00:00:1796175570.230292   13916 mlir_graph_optimization_pass.cc:425] MLIR V1 optimization pass is not "
    "enabled",
    "fully_quantize: 0, inference_type: 6, input_inference_type: FLOAT32, output_inference_type: FLOAT32",
    "INFO: Created TensorFlow Lite XNNPACK delegate for CPU.",
]

# Lines that say what went wrong: never taken for noise.
REAL_LINES = [
    "F0000 00:00:1796175560.847235   13916 tensor.cc:12] Check failed: dims() == 2 (3 vs. 2)",
    "E0000 00:00:1796175560.847235   13916 interpreter.cc:99] Node number 3 (CONV_2D) failed to prepare.",
    "Traceback (most recent call last):",
    "RuntimeError: tensorflow/lite/kernels/conv.cc:351 input->dims->size != 4 (3 != 4)",
    "  ok onnx -> saved_model (onnx_to_tf)  9.6s",
    "edgec: conversion error: onnx2tf failed",
]

# The shapes of framework log lines, written independently of edgec.logs.NOISE, for the end-to-end test.
FRAMEWORK_SHAPE = re.compile("|".join([
    r"^[IWEF]\d{4} \d\d:\d\d:\d\d\.\d+ ",                 # absl
    r"^\d{4}-\d\d-\d\d \d\d:\d\d:\d\d\.\d+: [IWEF] ",     # TensorFlow's own logging
    r"^WARNING: All log messages before absl",
    r"^INFO: ",                                           # TFLite
    r"^WARNING:(absl|tensorflow|root):",                  # Python logging of the frameworks
    r"^fully_quantize:",
    r"\[[WE]:onnxruntime:",
    r"(UserWarning|FutureWarning|DeprecationWarning):",
    r"rebuild TensorFlow with the appropriate compiler flags",
]))


def test_framework_lines_are_noise_and_errors_are_not():
    assert [ln for ln in FRAMEWORK_LINES if not logs.is_noise(ln)] == []
    assert [ln for ln in REAL_LINES if logs.is_noise(ln)] == []
    text = "\n".join(FRAMEWORK_LINES[:3] + REAL_LINES[:2] + FRAMEWORK_LINES[3:])
    assert logs.without_noise(text).splitlines() == REAL_LINES[:2]


def test_quiet_env_sets_only_what_is_unset_and_nothing_under_debug():
    env = logs.quiet_env({"TF_CPP_MIN_LOG_LEVEL": "1"})
    assert env == {**logs.QUIET_ENV, "TF_CPP_MIN_LOG_LEVEL": "1"}  # the user's own choice stays
    assert logs.quiet_env({"EDGEC_NATIVE_LOGS": "1"}) == {"EDGEC_NATIVE_LOGS": "1"}


def test_worker_env_is_quiet_unless_debug(monkeypatch):
    for key in (*logs.QUIET_ENV, logs.DEBUG_ENV):
        monkeypatch.delenv(key, raising=False)
    env = isolated._env()
    assert {k: env[k] for k in logs.QUIET_ENV} == logs.QUIET_ENV
    monkeypatch.setenv(logs.DEBUG_ENV, "1")
    env = isolated._env()
    assert env["TF_CPP_MIN_LOG_LEVEL"] == "0"  # TensorFlow's default, not the worker's quiet one
    assert "GRPC_VERBOSITY" not in env


CHILD = """
import sys
sys.stderr.write({noise!r} + "\\n")
sys.stderr.write("ValueError: the model's own reason\\n")
sys.stderr.write({last!r} + "\\n")
sys.exit(3)
"""


def _failing_child(tmp_path: Path) -> list[str]:
    script = tmp_path / "child.py"
    script.write_text(CHILD.format(noise="\n".join(FRAMEWORK_LINES[:6]), last=FRAMEWORK_LINES[-1]))
    return [sys.executable, str(script)]


def test_a_failed_workers_error_quotes_its_reason_not_the_framework_notes(tmp_path, monkeypatch, capsys):
    monkeypatch.delenv(logs.DEBUG_ENV, raising=False)
    res = isolated.run_task({"task": "none"}, timeout=60, command=_failing_child(tmp_path))
    assert res["crashed"] and "exit 3" in res["error"]
    assert "the model's own reason" in res["error"]
    assert not any(word in res["error"] for word in ("cuDNN", "computation placer", "XNNPACK", "oneDNN"))
    assert capsys.readouterr().err == ""  # a normal run keeps the child's stderr to itself


def test_debug_relays_the_workers_whole_stderr(tmp_path, monkeypatch, capsys):
    monkeypatch.setenv(logs.DEBUG_ENV, "1")
    res = isolated.run_task({"task": "none"}, timeout=60, command=_failing_child(tmp_path))
    assert "the model's own reason" in res["error"]
    err = capsys.readouterr().err
    assert re.search(r"^\[worker \d+\] W0000 .* computation placer already registered", err, re.M), err
    assert "[worker" in err and "Created TensorFlow Lite XNNPACK delegate" in err


def _edgec(args: list[str], cwd: Path) -> subprocess.CompletedProcess:
    """The real CLI in a fresh process, with none of the quieting variables set by the caller."""
    env = {k: v for k, v in os.environ.items() if k not in (*logs.QUIET_ENV, logs.DEBUG_ENV)}
    return subprocess.run([sys.executable, "-m", "edgec.cli.main", *args], capture_output=True, text=True,
                          timeout=900, env=env, cwd=cwd)


def _framework_lines(text: str) -> list[str]:
    return [ln for ln in text.splitlines() if FRAMEWORK_SHAPE.search(ln) or logs.is_noise(ln)]


def test_a_real_build_prints_no_framework_lines_and_debug_shows_them(models, tmp_path):
    # A cache of its own: every step runs, TensorFlow loads, onnx2tf, the converter and the int8
    # calibrator run, and so do the parity workers and the bench.
    out = tmp_path / "out"
    proc = _edgec(["build", str(models / "cnn.pt"), "--target", "rpi4", "-o", str(out), "--cache-dir",
                   str(tmp_path / "cache"), "--synthetic-validation", "--synthetic-calibration"], tmp_path)
    assert proc.returncode == 0, proc.stderr[-3000:]
    assert "  ok onnx -> saved_model (onnx_to_tf)" in proc.stderr  # converted here, not taken from a cache
    assert "bench [fp32] on this machine" in proc.stderr
    assert _framework_lines(proc.stderr) == []
    assert _framework_lines(proc.stdout) == []

    # An Android build without the bench: the bundle check is the first TFLite interpreter of this process.
    android = _edgec(["build", str(models / "cnn.pt"), "--target", "android-arm64-cpu", "-o", str(tmp_path / "and"),
                      "--cache-dir", str(tmp_path / "cache"), "--synthetic-validation", "--synthetic-calibration",
                      "--no-bench"], tmp_path)
    assert android.returncode == 0, android.stderr[-3000:]
    assert "bundle" in android.stdout
    assert _framework_lines(android.stderr + android.stdout) == []

    tflite = str(out / "model_fp32.tflite")
    quiet = _edgec(["bench", tflite, "--target", "rpi4"], tmp_path)
    assert quiet.returncode == 0, quiet.stderr[-3000:]
    assert _framework_lines(quiet.stderr + quiet.stdout) == []
    loud = _edgec(["bench", tflite, "--target", "rpi4", "--debug"], tmp_path)
    assert loud.returncode == 0, loud.stderr[-3000:]
    assert "Created TensorFlow Lite XNNPACK delegate for CPU." in loud.stderr
