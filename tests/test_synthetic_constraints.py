"""Synthetic data valid for the graph (index inputs within the indexed dim, non-zero integer
divisors, shape-like config inputs recorded), and clean errors for input types edgec cannot feed."""

from __future__ import annotations

import json

import numpy as np
import onnx
import pytest
from onnx import TensorProto, helper, numpy_helper

from edgec.data import datasets
from edgec.cli.main import main
from edgec.pipeline.config import BuildConfig
from edgec.data.constraints import input_constraints
from edgec.errors import UnsupportedModelError
from edgec.formats import Format, TensorSpec
from edgec.runtime.loaders import onnx_io, resolve_shapes


def _model(nodes, inputs, outputs, inits=()):
    graph = helper.make_graph(nodes, "g", inputs, outputs, initializer=list(inits))
    return helper.make_model(graph, opset_imports=[helper.make_opsetid("", 17)], ir_version=8)


def _vi(name, elem, shape):
    return helper.make_tensor_value_info(name, elem, shape)


def _embedding():
    """ids (int32) -> Cast -> Unsqueeze -> Squeeze -> Gather(emb[30, 4]); pos (int64) -> GatherElements."""
    emb = numpy_helper.from_array(np.arange(120, dtype=np.float32).reshape(30, 4), "emb")
    table = numpy_helper.from_array(np.ones((1, 7), np.float32), "table")
    axes = numpy_helper.from_array(np.array([0], np.int64), "axes")
    nodes = [helper.make_node("Cast", ["ids"], ["ids64"], to=TensorProto.INT64, name="cast"),
             helper.make_node("Unsqueeze", ["ids64", "axes"], ["u"], name="unsq"),
             helper.make_node("Squeeze", ["u", "axes"], ["s"], name="sq"),
             helper.make_node("Gather", ["emb", "s"], ["y"], axis=0, name="embed"),
             helper.make_node("GatherElements", ["table", "pos"], ["z"], axis=1, name="pick"),
             helper.make_node("TopK", ["z", "k"], ["vals", "idx"], name="topk")]
    return _model(nodes, [_vi("ids", TensorProto.INT32, [1, 8]), _vi("pos", TensorProto.INT64, [1, 5]),
                          _vi("k", TensorProto.INT64, [1])],
                  [_vi("y", TensorProto.FLOAT, [1, 8, 4]), _vi("vals", TensorProto.FLOAT, None)],
                  [emb, table, axes])


def _run(model, feed):
    import onnxruntime as ort

    sess = ort.InferenceSession(model.SerializeToString(), providers=["CPUExecutionProvider"])
    return sess.run(None, feed)


def test_index_inputs_are_drawn_within_the_indexed_dim():
    model = _embedding()
    found = input_constraints(model)
    assert (found["ids"].kind, found["ids"].low, found["ids"].high) == ("index", 0, 30)
    assert "Gather data axis 0 at node embed" in found["ids"].why
    assert (found["pos"].kind, found["pos"].high) == ("index", 7)
    assert found["k"].kind == "config" and "TopK" in found["k"].why
    specs = [TensorSpec("ids", (1, 8), "int32"), TensorSpec("pos", (1, 5), "int64"), TensorSpec("k", (1,), "int64")]
    ds = datasets.synthetic(specs, 16, 0, found)
    assert all(0 <= s.feed["ids"].min() and s.feed["ids"].max() < 30 for s in ds.samples)
    assert max(int(s.feed["ids"].max()) for s in ds.samples) > 20  # the range is used, not just [0, small)
    assert all(s.feed["pos"].max() < 7 for s in ds.samples)
    rec = ds.record()["constraints"]
    assert "ids: [0, 30) from Gather data axis 0 at node embed" in rec
    assert any(r.startswith("k: left as drawn") for r in rec)
    for s in ds.samples[:4]:   # the embedding part runs in onnxruntime (k is left as drawn: not fed)
        sub = _model(model.graph.node[:4], [model.graph.input[0]], [model.graph.output[0]],
                     model.graph.initializer)
        _run(sub, {"ids": s.feed["ids"]})


def test_without_constraints_random_indices_break_onnxruntime():
    from edgec.runtime.loaders import random_inputs

    model = _embedding()
    sub = _model(model.graph.node[:4], [model.graph.input[0]], [model.graph.output[0]], model.graph.initializer)
    feed = random_inputs([TensorSpec("ids", (1, 8), "int32")], seed=0)
    with pytest.raises(Exception, match="indices"):
        _run(sub, feed)


def _int_div():
    nodes = [helper.make_node("Div", ["a", "b"], ["q"], name="int_div"),
             helper.make_node("Cast", ["q"], ["y"], to=TensorProto.FLOAT, name="to_float")]
    return _model(nodes, [_vi("a", TensorProto.INT32, [1, 4]), _vi("b", TensorProto.INT32, [1, 4])],
                  [_vi("y", TensorProto.FLOAT, [1, 4])])


def test_integer_divisors_are_non_zero_and_onnx_sources_get_them(tmp_path):
    from edgec.data.calibration import resolve

    model = _int_div()
    found = input_constraints(model)
    assert found["b"].kind == "nonzero" and "int_div" in found["b"].why and "a" not in found
    path = tmp_path / "div.onnx"
    onnx.save(model, str(path))
    specs = [TensorSpec("a", (1, 4), "int32"), TensorSpec("b", (1, 4), "int32")]
    cfg = BuildConfig(model=str(path), synthetic_validation=True, validation_samples=32)
    data = resolve(cfg, ("fp32",), specs, Format.ONNX, [])
    assert all((s.feed["b"] != 0).all() for s in data.validation.samples)
    assert data.record()["validation"]["constraints"] == ["b: non-zero integer divisor of Div at node int_div"]
    float_div = _model([helper.make_node("Div", ["a", "b"], ["y"])], [_vi("a", TensorProto.FLOAT, [1]),
                       _vi("b", TensorProto.FLOAT, [1])], [_vi("y", TensorProto.FLOAT, [1])])
    assert input_constraints(float_div) == {}


def test_onehot_and_scatter_indices():
    depth = numpy_helper.from_array(np.array(6, np.int64), "depth")
    values = numpy_helper.from_array(np.array([0, 1], np.float32), "values")
    data = numpy_helper.from_array(np.zeros((5, 3), np.float32), "data")
    upd = numpy_helper.from_array(np.ones((2, 3), np.float32), "upd")
    nodes = [helper.make_node("OneHot", ["c", "depth", "values"], ["oh"], name="onehot"),
             helper.make_node("ScatterND", ["data", "where", "upd"], ["sc"], name="scatter")]
    model = _model(nodes, [_vi("c", TensorProto.INT64, [1, 3]), _vi("where", TensorProto.INT64, [2, 1])],
                   [_vi("oh", TensorProto.FLOAT, None), _vi("sc", TensorProto.FLOAT, [5, 3])], [depth, values, data, upd])
    found = input_constraints(model)
    assert (found["c"].kind, found["c"].high) == ("index", 6)
    assert (found["where"].kind, found["where"].high) == ("index", 3)   # the smallest indexed dim bounds all


# -- input types edgec cannot feed -----------------------------------------------------------------

def _identity(elem, shape=(1, 4), rank_known=True):
    x = _vi("x", elem, list(shape)) if rank_known else helper.make_tensor_value_info("x", elem, None)
    return _model([helper.make_node("Identity", ["x"], ["y"], name="id")], [x], [_vi("y", elem, None)])


@pytest.mark.parametrize("elem, name", [(TensorProto.UINT32, "uint32"), (TensorProto.STRING, "string"),
                                        (TensorProto.COMPLEX64, "complex64"), (TensorProto.BFLOAT16, "bfloat16")])
def test_unsupported_input_types_are_clean_errors(elem, name, tmp_path, capsys):
    ins, _ = onnx_io(_identity(elem))
    with pytest.raises(UnsupportedModelError, match=rf"'x' \({name}\)"):
        resolve_shapes(ins, {}, {}, "m.onnx")
    path = tmp_path / f"{name}.onnx"
    onnx.save(_identity(elem), str(path))
    rc = main(["build", str(path), "-o", str(tmp_path / "out"), "--synthetic-validation", "--no-bench", "-q",
               "--no-cache"])
    err = capsys.readouterr().err
    assert rc == 4 and f"'x' ({name})" in err and "Traceback" not in err and "cast inside the model" in err
    assert not (tmp_path / "out").exists()


def test_sequence_input_is_a_clean_error():
    x = helper.make_tensor_sequence_value_info("x", TensorProto.FLOAT, None)
    model = _model([helper.make_node("SequenceLength", ["x"], ["y"])], [x], [_vi("y", TensorProto.INT64, [])])
    with pytest.raises(UnsupportedModelError, match=r"'x' \(sequence_type\)"):
        resolve_shapes(onnx_io(model)[0], {}, {}, "m.onnx")


def test_unknown_rank_needs_an_input_shape(tmp_path, capsys):
    ins, _ = onnx_io(_identity(TensorProto.FLOAT, rank_known=False))
    with pytest.raises(UnsupportedModelError, match="unknown rank.*: x") as exc:
        resolve_shapes(ins, {}, {}, "m.onnx")
    assert "--input-shape" in exc.value.one_line()
    assert resolve_shapes(ins, {"x": (1, 4)}, {}, "m.onnx")[0].shape == (1, 4)
    path = tmp_path / "rankless.onnx"
    onnx.save(_identity(TensorProto.FLOAT, rank_known=False), str(path))
    rc = main(["build", str(path), "-o", str(tmp_path / "out"), "--synthetic-validation", "--no-bench", "-q",
               "--no-cache"])
    assert rc == 4 and "unknown rank" in capsys.readouterr().err


def test_the_int_div_repro_builds_on_synthetic_data(cache_dir, tmp_path):
    """With non-zero divisors drawn, the model that SIGFPEs on zeros builds (test_isolation)."""
    path = tmp_path / "div.onnx"
    onnx.save(_int_div(), str(path))
    out = tmp_path / "out"
    rc = main(["build", str(path), "-o", str(out), "--cache-dir", str(cache_dir), "--synthetic-validation",
               "--variants", "fp32", "--no-bench", "-q"])
    assert rc == 0
    val = json.loads((out / "manifest.json").read_text())["parity"]["validation"]
    assert val["constraints"] == ["b: non-zero integer divisor of Div at node int_div"]
