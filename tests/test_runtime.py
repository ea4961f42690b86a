"""The runtime layer (edgec/runtime/): one runner per runtime with one lifecycle (load -> metadata ->
infer on named arrays -> close), quantized I/O converted in one place, the hot path a timing loop
calls, the isolated worker turning a signal into an error, and a custom op without a kernel as
a documented error in bench, parity and serve. The .tflite models are written here, flatbuffer by
flatbuffer (an ADD, a DEQUANTIZE -> QUANTIZE pair with int8 I/O, a custom op)."""

from __future__ import annotations

import json
import os
import shutil
import signal
import subprocess
import sys
from pathlib import Path

import numpy as np
import pytest

from edgec.errors import UnsupportedOpsError
from edgec.runtime.tflite import TFLite, TensorInfo, dequantize_array, quantize_array

EDGEC = [sys.executable, "-m", "edgec.cli.main"]
RUNTIME = Path(__file__).resolve().parents[1] / "edgec" / "runtime"


# -- tiny .tflite files, written with the schema's object API -------------------------------------

def _tensor(s, name, dtype, quant=None):
    t = s.TensorT()
    t.name, t.shape, t.type, t.buffer = name.encode(), [1, 4], dtype, 0
    if quant:
        q = s.QuantizationParametersT()
        q.scale, q.zeroPoint = [quant[0]], [quant[1]]
        t.quantization = q
    return t


def _write(path: Path, ops: list, tensors: list, signature: bool = True) -> Path:
    """ops: (builtin code or custom op name, input tensor indices, output tensor indices); the
    first tensor is the model input, the last its output."""
    import flatbuffers
    from ai_edge_litert import schema_py_generated as s

    m = s.ModelT()
    m.version, m.description, m.buffers = 3, b"edgec test", [s.BufferT()]
    m.operatorCodes, operators = [], []
    for kind, ins, outs in ops:
        code = s.OperatorCodeT()
        if isinstance(kind, str):
            code.builtinCode = code.deprecatedBuiltinCode = s.BuiltinOperator.CUSTOM
            code.customCode = kind.encode()
        else:
            code.builtinCode = code.deprecatedBuiltinCode = kind
            code.version = 1
        m.operatorCodes.append(code)
        op = s.OperatorT()
        op.opcodeIndex, op.inputs, op.outputs = len(m.operatorCodes) - 1, ins, outs
        if kind == s.BuiltinOperator.ADD:
            op.builtinOptionsType, op.builtinOptions = s.BuiltinOptions.AddOptions, s.AddOptionsT()
        operators.append(op)
    g = s.SubGraphT()
    g.tensors, g.inputs, g.outputs, g.operators = [_tensor(s, *t) for t in tensors], [0], [len(tensors) - 1], operators
    m.subgraphs = [g]
    if signature:
        def entry(name, index):
            e = s.TensorMapT()
            e.name, e.tensorIndex = name.encode(), index
            return e

        sd = s.SignatureDefT()
        sd.signatureKey, sd.subgraphIndex = b"serving_default", 0
        sd.inputs, sd.outputs = [entry("x", 0)], [entry("y", len(tensors) - 1)]
        m.signatureDefs = [sd]
    b = flatbuffers.Builder(1024)
    b.Finish(m.Pack(b), file_identifier=b"TFL3")
    path.write_bytes(bytes(b.Output()))
    return path


@pytest.fixture(scope="module")
def tflites(tmp_path_factory) -> dict[str, Path]:
    from ai_edge_litert import schema_py_generated as s

    d, op, T = tmp_path_factory.mktemp("tflites"), s.BuiltinOperator, s.TensorType
    return {
        "add": _write(d / "add.tflite", [(op.ADD, [0, 0], [1])], [("in", T.FLOAT32), ("out", T.FLOAT32)]),
        "add_i32": _write(d / "add_i32.tflite", [(op.ADD, [0, 0], [1])], [("in", T.INT32), ("out", T.INT32)]),
        "add_nosig": _write(d / "add_nosig.tflite", [(op.ADD, [0, 0], [1])], [("in", T.FLOAT32), ("out", T.FLOAT32)],
                            signature=False),
        # int8 in (scale 0.5, zero 3) -> float -> int8 out (scale 0.25, zero -2)
        "int8": _write(d / "int8.tflite", [(op.DEQUANTIZE, [0], [1]), (op.QUANTIZE, [1], [2])],
                       [("qin", T.INT8, (0.5, 3)), ("mid", T.FLOAT32), ("qout", T.INT8, (0.25, -2))]),
        "custom": _write(d / "custom.tflite", [(op.ADD, [0, 0], [1]), ("EdgecTestOp", [1], [2])],
                         [("in", T.FLOAT32), ("doubled", T.FLOAT32), ("out", T.FLOAT32)]),
        "two_custom": _write(d / "two_custom.tflite", [("EdgecOpA", [0], [1]), ("EdgecOpB", [1], [2])],
                             [("in", T.FLOAT32), ("a_out", T.FLOAT32), ("b_out", T.FLOAT32)]),
    }


X = np.array([[-1.0, 0.26, 1.5, 70.0]], np.float32)


# -- TFLite ---------------------------------------------------------------------------------------

def test_tflite_lifecycle_metadata_and_named_infer(tflites):
    r = TFLite(tflites["add"], threads=1)
    assert not r.loaded
    with r:
        assert r.loaded and r.signature == "serving_default" and r.package == "ai-edge-litert"
        (i,), (o,) = r.inputs(), r.outputs()
        assert i == TensorInfo("x", (1, 4), "float32", None, 0, "in")
        assert (o.name, o.shape, o.dtype, o.quantization, o.tensor) == ("y", (1, 4), "float32", None, "out")
        assert np.array_equal(r.infer({"x": X})["y"], 2 * X)
        assert np.array_equal(r.infer({"in": X})["y"], 2 * X)  # the graph's tensor name works too
        with pytest.raises(KeyError, match="no tensor 'nope'.*inputs: x"):
            r.infer({"nope": X})
    assert not r.loaded
    assert np.array_equal(r.infer({"x": X})["y"], 2 * X)  # a closed runner loads again on use
    r.close()
    plain = TFLite(tflites["add"], signature=None)
    assert plain.signature is None and [t.name for t in plain.inputs()] == ["in"]
    assert [t.name for t in TFLite(tflites["add_nosig"]).outputs()] == ["out"]


@pytest.mark.parametrize("package", ["ai_edge_litert", "tflite_runtime"])
@pytest.mark.parametrize("delegate", ["default", "none"])
def test_tflite_package_delegate_and_threads_are_load_options(tflites, package, delegate):
    with TFLite(tflites["add"], package=package, delegate=delegate, threads=2) as r:
        assert r.package == package.replace("_", "-") and r.version
        assert np.array_equal(r.infer({"x": X})["y"], 2 * X)
    with pytest.raises(ValueError, match="unknown TFLite delegate"):
        TFLite(tflites["add"], delegate="gpu")
    with pytest.raises(ValueError, match="unknown TFLite package"):
        TFLite(tflites["add"], package="nope").load()


def test_quantized_io_round_trip(tflites):
    with TFLite(tflites["int8"]) as r:
        (i,), (o,) = r.inputs(), r.outputs()
        assert (i.dtype, i.quantization) == ("int8", (0.5, 3)) and (o.dtype, o.quantization) == ("int8", (0.25, -2))
        q_in = r.prepare_input("x", X)
        assert q_in.dtype == np.int8 and q_in.tolist() == [[1, 4, 6, 127]]  # round to nearest, saturate
        raw = r.infer({"x": X}, raw={"y"})["y"]
        assert raw.dtype == np.int8
        # what the model computes, step by step: dequantize with the input's parameters, requantize
        mid = (q_in.astype(np.float64) - 3) * 0.5
        assert raw.tolist() == np.clip(np.round(mid / 0.25 - 2), -128, 127).astype(np.int8).tolist()
        real = r.infer({"x": X})["y"]
        assert real.dtype == np.float32 and np.array_equal(real, dequantize_array(raw, 0.25, -2))
        assert np.allclose(real[0, :3], X[0, :3], atol=0.25)  # within the coarser step
        assert real[0, 3] == (127 + 2) * 0.25  # 70 saturates at the input and again at the output
        ints = np.array([[1, 4, 6, 127]], np.int64)  # already-quantized values pass through as the input's type
        assert np.array_equal(r.infer({"x": ints}, raw={"y"})["y"], raw)


def test_quantize_and_dequantize_per_tensor_and_per_channel():
    q = quantize_array(np.array([-300.0, -0.4, 0.6, 300.0]), np.int8, 1.0, 0)
    assert q.tolist() == [-128, 0, 1, 127]
    q = np.array([[2, 4], [6, 8]], np.int8)
    assert dequantize_array(q, [0.5, 2.0], [0, 1], axis=1).tolist() == [[1.0, 6.0], [3.0, 14.0]]
    assert dequantize_array(q, 0.5, 2).tolist() == [[0.0, 1.0], [2.0, 3.0]]


def test_hot_path_invoke_is_the_interpreters_own(tflites):
    with TFLite(tflites["add"], signature=None) as r:
        r.set_inputs({"in": X})
        call = r.invoke
        assert call.__self__ is r.interpreter and call.__name__ == "invoke"  # nothing wraps it
        call()
        assert np.array_equal(r.get_outputs()["out"], 2 * X)


def test_narrow_integer_inputs_are_checked(tflites):
    """int64 ids into an int32 input: narrowed when they fit, refused when not (a ValueError)."""
    with TFLite(tflites["add_i32"]) as r:
        assert r.infer({"x": np.array([[1, 2, 3, 4]], np.int64)})["y"].tolist() == [[2, 4, 6, 8]]
        with pytest.raises(ValueError, match="outside int32"):
            r.infer({"x": np.array([[1, 2, 3, 2**40]], np.int64)})


# -- the other runtimes -----------------------------------------------------------------------------

def _onnx_add(path: Path) -> Path:
    import onnx
    from onnx import TensorProto, helper

    g = helper.make_graph([helper.make_node("Add", ["a", "b"], ["sum"])], "add",
                          [helper.make_tensor_value_info("a", TensorProto.FLOAT, ["batch", 4]),
                           helper.make_tensor_value_info("b", TensorProto.FLOAT, [1, 4])],
                          [helper.make_tensor_value_info("sum", TensorProto.FLOAT, ["batch", 4])])
    onnx.save(helper.make_model(g, opset_imports=[helper.make_opsetid("", 17)], ir_version=8), str(path))
    return path


def test_onnxruntime_lifecycle_bytes_and_hot_path(tmp_path):
    from edgec.runtime.onnxruntime import OnnxRuntime

    path = _onnx_add(tmp_path / "add.onnx")
    with OnnxRuntime(path, threads=1) as r:
        assert [(t.name, t.shape, t.dtype) for t in r.inputs()] == [("a", (None, 4), "float32"),
                                                                    ("b", (1, 4), "float32")]
        assert [t.name for t in r.outputs()] == ["sum"] and r.used_providers() == ["CPUExecutionProvider"]
        feed = {"a": X, "b": np.ones((1, 4), np.float32)}
        assert np.array_equal(r.infer(feed)["sum"], X + 1)
        r.set_inputs(feed)
        assert np.array_equal(r.invoke()[0], X + 1)
    assert not r.loaded
    with OnnxRuntime(path.read_bytes()) as r:  # serialized bytes: a probe or a sub-graph
        assert list(r.infer({"a": X, "b": X}, outputs=["sum"])) == ["sum"]


def test_torch_runner_flattens_outputs():
    import torch

    from edgec.runtime.torch import Torch

    class Two(torch.nn.Module):
        def forward(self, a, b):
            return a + b, {"x": a * 2}

    r = Torch(Two())
    out = r.infer({"a": X, "b": X})
    assert list(out) == ["output_0", "output_1"] and np.array_equal(out["output_1"], 2 * X)
    assert [t.name for t in r.inputs()] == ["a", "b"] and [t.shape for t in r.outputs()] == [(1, 4), (1, 4)]


def test_tensorflow_saved_model_and_keras_runners(tmp_path):
    import tensorflow as tf

    from edgec.runtime.tensorflow import Keras, SavedModel

    class M(tf.Module):
        @tf.function(input_signature=[tf.TensorSpec([1, 4], tf.float32, name="x")])
        def serve(self, x):
            return {"y": x * 3.0}

    m = M()
    tf.saved_model.save(m, str(tmp_path / "sm"), signatures={"serving_default": m.serve})
    with SavedModel(tmp_path / "sm") as r:
        assert [(t.name, t.shape) for t in r.inputs()] == [("x", (1, 4))] and [t.name for t in r.outputs()] == ["y"]
        assert np.allclose(r.infer({"x": X})["y"], 3 * X)
    import keras  # Keras 3, as load_keras reads it (tf.keras is Keras 2 once TF_USE_LEGACY_KERAS is set)

    inp = keras.Input((4,), name="feat")
    model = keras.Model(inp, keras.layers.Dense(2, name="head", kernel_initializer="ones")(inp))
    model.save(str(tmp_path / "m.keras"))
    with Keras(tmp_path / "m.keras") as r:
        assert [t.name for t in r.inputs()] == ["feat"]
        (name, y), = r.infer({"feat": X}).items()
        assert name == r.outputs()[0].name and np.allclose(y, X.sum(axis=1, keepdims=True).repeat(2, axis=1))


# -- custom ops: one documented error, everywhere ---------------------------------------------------

@pytest.mark.parametrize("package", ["ai_edge_litert", "tflite_runtime"])
def test_a_custom_op_without_a_kernel_is_an_unsupported_ops_error(tflites, package):
    with pytest.raises(UnsupportedOpsError) as e:
        TFLite(tflites["custom"], package=package).load()
    err = e.value
    assert err.exit_code == 4 and err.ops == {"EdgecTestOp": ["out"]} and err.where == str(tflites["custom"])
    assert package.replace("_", "-") in err.stage and "registered" in err.hint and "delegate" in err.hint
    assert err.reason.startswith("Encountered unresolved custom op: EdgecTestOp")
    # the runtime stops at the first; the flatbuffer names every custom op of the graph
    with pytest.raises(UnsupportedOpsError) as e:
        TFLite(tflites["two_custom"], package=package).load()
    assert e.value.ops == {"EdgecOpA": ["a_out"], "EdgecOpB": ["b_out"]}


def test_the_runner_as_a_script_probes_another_package(tflites):
    def probe(model, package):
        p = subprocess.run([sys.executable, str(RUNTIME / "tflite.py"), "--probe", str(model), "--package", package],
                           capture_output=True, text=True, timeout=120)
        line = next(ln for ln in p.stdout.splitlines() if ln.startswith("EDGEC-PROBE "))
        return p.returncode, json.loads(line.split(" ", 1)[1])

    code, res = probe(tflites["add"], "tflite_runtime")
    assert code == 0 and res["loaded"] and res["package"] == "tflite-runtime" and res["inputs"][0]["name"] == "x"
    code, res = probe(tflites["custom"], "tflite_runtime")
    assert code == 1 and not res["loaded"] and res["custom_ops"] == ["EdgecTestOp"]
    assert res["error"].startswith("Encountered unresolved custom op: EdgecTestOp")


def test_compat_check_loads_with_the_profiles_package_through_the_probe(tflites):
    from edgec.targets.compat import try_load

    ok = try_load(tflites["add"], "tflite-runtime")
    assert ok["attempted"] and ok["loaded"] and ok["version"] == "2.14.0"
    bad = try_load(tflites["custom"], "tflite-runtime")
    assert bad["loaded"] is False and "EdgecTestOp" in bad["error"]


def test_bench_names_the_custom_op(tflites):
    p = subprocess.run([*EDGEC, "bench", str(tflites["custom"]), "--min-runs", "5"], capture_output=True,
                       text=True, timeout=180)
    assert p.returncode == 4, p.stderr
    assert "EdgecTestOp at out" in p.stderr and "registered" in p.stderr
    assert "internal error" not in p.stderr and "Traceback" not in p.stderr


def test_bench_session_times_the_runners_interpreter(tflites):
    from edgec.bench.runtimes import tflite_session

    session, source = tflite_session(tflites["int8"], 1, "xnnpack", None, 0)
    runner = session.handle
    assert session.invoke.__self__ is runner.interpreter and session.runtime == "ai-edge-litert"
    assert session.inputs == [{"name": "qin", "shape": [1, 4], "dtype": "int8"}] and "seed 0" in source
    session.invoke()


def test_parity_names_the_custom_op(tflites):
    """``edgec parity`` refuses a model its runtime cannot load, as bench and serve do (exit 4)."""
    import edgec

    with pytest.raises(UnsupportedOpsError) as exc:
        edgec.compare_models(tflites["add"], tflites["custom"], synthetic=True)
    assert exc.value.exit_code == 4 and exc.value.ops == {"EdgecTestOp": ["out"]}
    assert "EdgecTestOp" in str(exc.value)


def test_the_worker_carries_the_error_class_to_the_parent(tflites, tmp_path):
    from edgec.runtime.isolated import error_from, run_task, write_feeds

    feeds = write_feeds(tmp_path / "in", ["x"], [{"x": X}])
    spec = [{"name": "x", "shape": [1, 4], "dtype": "float32"}]
    res = run_task({"task": "tflite_outputs", "model": str(tflites["custom"]), "inputs": str(feeds),
                    "outputs": str(tmp_path / "out"), "source_inputs": spec,
                    "source_outputs": [{**spec[0], "name": "y"}]}, timeout=120)
    assert "EdgecTestOp" in res["error"]
    err = error_from(res)
    assert isinstance(err, UnsupportedOpsError) and err.exit_code == 4 and err.ops == {"EdgecTestOp": ["out"]}
    assert str(err) == res["error"]
    assert error_from({"error": "plain"}) is None


def test_serve_refuses_to_start(tflites):
    p = subprocess.run([*EDGEC, "serve", str(tflites["custom"]), "--port", "0"], capture_output=True, text=True,
                       timeout=180)
    assert p.returncode == 4, p.stderr
    assert "EdgecTestOp at out" in p.stderr and "Traceback" not in p.stderr and "serving at" not in p.stdout


# -- the isolated wrapper ---------------------------------------------------------------------------

@pytest.mark.parametrize("sig", ["SIGSEGV", "SIGFPE"])
def test_a_worker_killed_by_a_signal_is_a_clear_error(sig):
    from edgec.runtime.isolated import run_task

    die = f"import os, signal, sys; sys.stderr.write('about to die\\n'); os.kill(os.getpid(), signal.{sig})"
    res = run_task({"task": "tflite_outputs"}, timeout=60, command=[sys.executable, "-c", die])
    assert res["crashed"] and res["signal"] == sig
    assert f"died with {sig} (exit -{int(getattr(signal, sig))})" in res["error"] and "about to die" in res["error"]


# -- the runner shipped to a board, and the litert-torch environment --------------------------------

def test_device_runner_with_the_shipped_runner_and_no_edgec(tflites, tmp_path):
    """device_runner.py, timing.py and tflite.py copied to a folder, run by a python that cannot
    import edgec (as on a board)."""
    board = tmp_path / "board"
    board.mkdir()
    for f in (RUNTIME.parent / "bench" / "device_runner.py", RUNTIME.parent / "bench" / "timing.py",
              RUNTIME / "tflite.py"):
        shutil.copy(f, board / f.name)
    for name in ("add", "int8", "custom"):
        shutil.copy(tflites[name], board / f"{name}.tflite")
    site = tmp_path / "site"
    site.mkdir()
    (site / "sitecustomize.py").write_text("import sys\nsys.modules['edgec'] = None\n")
    env = {**os.environ, "PYTHONPATH": str(site)}

    def run(task: dict):
        (board / "task.json").write_text(json.dumps(task))
        p = subprocess.run([sys.executable, "device_runner.py", "task.json"], cwd=board, capture_output=True,
                           text=True, timeout=120, env=env)
        line = next(ln for ln in p.stdout.splitlines() if ln.startswith("EDGEC-RESULT "))
        return p.returncode, json.loads(line.split(" ", 1)[1])

    np.savez(board / "inputs.npz", **{"in": X})
    code, res = run({"task": "bench", "model": "add.tflite", "inputs": "inputs.npz", "threads": 1,
                     "loop": {"warmup_s": 0.01, "min_runs": 5, "min_seconds": 0.01, "max_seconds": 5}})
    assert code == 0 and len(res["samples_ns"]) >= 5 and res["runtime"] == "ai-edge-litert", res
    np.savez(board / "feeds.npz", **{"0/x": np.array([[1, 4, 6, 127]], np.int8)})
    code, res = run({"task": "outputs", "model": "int8.tflite", "feeds": "feeds.npz", "outputs": "out.npz",
                     "samples": 1, "input_keys": ["x"], "signature": "serving_default", "threads": 1})
    assert code == 0 and res["samples"] == 1
    assert np.load(board / "out.npz")["0/y"].tolist() == [[-6, 0, 4, 127]]  # raw int8 out, as the host expects
    code, res = run({"task": "bench", "model": "custom.tflite", "threads": 1, "loop": {}})
    assert code == 4 and res["custom_ops"] == ["EdgecTestOp"] and "cannot load the model" in res["error"]


def test_litert_child_reads_signatures_with_the_runner_file(tflites):
    from edgec.convert import envs
    from edgec.convert.litert_torch import CHILD, RUNTIME_TFLITE

    python = envs.require_env(envs.get("litert"))
    code = (f"import sys; sys.path.insert(0, {str(CHILD.parent)!r}); import _litert_child as c; "
            f"print(c.signature({str(tflites['add'])!r}, {str(RUNTIME_TFLITE)!r}))")
    p = subprocess.run([str(python), "-c", code], capture_output=True, text=True, timeout=120)
    assert p.returncode == 0, p.stderr
    assert p.stdout.strip().splitlines()[-1] == "{'key': 'serving_default', 'inputs': ['x'], 'outputs': ['y']}"
