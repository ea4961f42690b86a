"""No framework run can kill or wedge edgec: the source, ONNX, SavedModel and TFLite runs of the
parity ledger happen in worker children. A signal in the source run is a RuntimeCrashError naming
the stage and the signal, raised before anything is written; in a later stage, that stage's error."""

from __future__ import annotations

import json
import signal
import subprocess
import sys

import numpy as np
import pytest

import edgec
from edgec.cli.main import main
from edgec.errors import EXIT_CODES, RuntimeCrashError
from edgec.runtime.isolated import CRASH_HOOK


def _int_div_onnx(path):
    """y = float(a / b) on int32: onnxruntime's integer Div has no zero check (SIGFPE on x86)."""
    import onnx
    from onnx import TensorProto, helper

    a = helper.make_tensor_value_info("a", TensorProto.INT32, [1, 4])
    b = helper.make_tensor_value_info("b", TensorProto.INT32, [1, 4])
    y = helper.make_tensor_value_info("y", TensorProto.FLOAT, [1, 4])
    nodes = [helper.make_node("Div", ["a", "b"], ["q"], name="int_div"),
             helper.make_node("Cast", ["q"], ["y"], to=TensorProto.FLOAT, name="to_float")]
    model = helper.make_model(helper.make_graph(nodes, "int_div", [a, b], [y]),
                              opset_imports=[helper.make_opsetid("", 17)], ir_version=8)
    onnx.save(model, str(path))
    return path


@pytest.fixture(scope="module")
def div_model(tmp_path_factory):
    d = tmp_path_factory.mktemp("int_div")
    model = _int_div_onnx(d / "div.onnx")
    np.savez(d / "zeros.npz", a=np.full((2, 1, 4), 7, np.int32), b=np.zeros((2, 1, 4), np.int32))
    return model, d / "zeros.npz"


def test_onnxruntime_really_dies_with_sigfpe(div_model):
    model, _ = div_model
    code = ("import numpy as np, onnxruntime as ort; s = ort.InferenceSession(%r, providers=['CPUExecutionProvider']);"
            "s.run(None, {'a': np.ones((1, 4), np.int32), 'b': np.zeros((1, 4), np.int32)})" % str(model))
    proc = subprocess.run([sys.executable, "-c", code], capture_output=True, timeout=60)
    assert proc.returncode == -signal.SIGFPE


def test_sigfpe_in_the_source_run_is_a_clean_error_and_nothing_is_written(div_model, cache_dir, tmp_path):
    model, zeros = div_model
    out = tmp_path / "out"
    args = ["build", str(model), "-o", str(out), "--cache-dir", str(cache_dir), "--validation-data", str(zeros),
            "--variants", "fp32", "--no-bench"]
    proc = subprocess.run([sys.executable, "-m", "edgec.cli.main", *args], capture_output=True, text=True, timeout=600)
    assert proc.returncode == RuntimeCrashError.exit_code == 11 and 11 in EXIT_CODES
    lines = [ln for ln in proc.stderr.splitlines() if ln.startswith("edgec:")]
    assert len(lines) == 1 and "Traceback" not in proc.stderr, proc.stderr
    assert lines[0].startswith("edgec: crash error: parity: source (onnxruntime): ") and "SIGFPE" in lines[0]
    assert not out.exists()
    with pytest.raises(RuntimeCrashError, match=r"parity: source \(onnxruntime\).*SIGFPE"):
        edgec.build(edgec.BuildConfig(model=str(model), out=str(out), cache_dir=str(cache_dir),
                                      validation_data=str(zeros), variants=("fp32",), bench=False))
    assert not out.exists()


def _val(tmp_path, seed: int) -> str:
    path = tmp_path / f"val{seed}.npz"
    np.savez(path, x=np.random.default_rng(seed).standard_normal((3, 3, 32, 32)).astype(np.float32))
    return str(path)


def test_a_crash_in_a_later_stage_is_that_stages_error(models, cache_dir, tmp_path, monkeypatch, capsys):
    monkeypatch.setenv(CRASH_HOOK, "saved_model")   # the SavedModel run kills its worker with SIGFPE
    out = tmp_path / "out"
    rc = main(["build", str(models / "cnn.pt"), "-o", str(out), "-q", "--no-bench", "--cache-dir", str(cache_dir),
               "--variants", "fp32", "--validation-data", _val(tmp_path, 71)])
    assert rc == 8, capsys.readouterr().err
    stages = {s["stage"]: s for s in json.loads((out / "manifest.json").read_text())["parity"]["stages"]}
    assert "SIGFPE" in stages["saved_model"]["error"] and not stages["saved_model"]["ok"]
    assert stages["onnx"]["ok"] and stages["tflite:fp32"]["ok"]


def test_a_crash_in_a_torch_source_names_torch(models, cache_dir, tmp_path, monkeypatch, capsys):
    monkeypatch.setenv(CRASH_HOOK, "source")
    out = tmp_path / "out"
    rc = main(["build", str(models / "cnn.pt"), "-o", str(out), "-q", "--no-bench", "--cache-dir", str(cache_dir),
               "--variants", "fp32", "--validation-data", _val(tmp_path, 72)])
    err = capsys.readouterr().err
    assert rc == 11 and "parity: source (torch)" in err and "SIGFPE" in err
    assert not out.exists()


def tiny_cnn_factory():  # --factory test_isolation:tiny_cnn_factory
    import tiny_models as tm

    return tm.seeded(tm.TinyCNN), tm.cnn_inputs()


def test_a_factory_module_runs_in_the_worker(cache_dir, tmp_path):
    """The factory's module lives in the parent's memory; the child loads the saved pickle, its
    classes importable through the parent's sys.path."""
    res = edgec.build(edgec.BuildConfig(factory="test_isolation:tiny_cnn_factory", out=str(tmp_path / "out"),
                                        cache_dir=str(cache_dir), validation_data=_val(tmp_path, 73),
                                        variants=("fp32",), bench=False))
    parity = res.manifest["parity"]
    assert parity["ok"] and parity["source_runtime"] == "torch"
