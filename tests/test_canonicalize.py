"""edgec.passes.canonicalize: fixed shapes, constant inputs, simplification with fallbacks, If folding
(top level, nested, inside a Loop body) and the record; onnxruntime checks the numbers."""

from __future__ import annotations

import sys

import numpy as np
import pytest

onnx = pytest.importorskip("onnx")
ort = pytest.importorskip("onnxruntime")
from onnx import TensorProto, helper, numpy_helper  # noqa: E402

from edgec.errors import UsageError  # noqa: E402
from edgec.formats import TensorSpec  # noqa: E402
from edgec.passes import canonicalize as canon  # noqa: E402

F, I64 = TensorProto.FLOAT, TensorProto.INT64


def _const(name, value, dtype=np.float32):
    return helper.make_node("Constant", [], [name], value=numpy_helper.from_array(np.array(value, dtype)))


def _vi(name, elem=F, shape=("N", 4)):
    return helper.make_tensor_value_info(name, elem, shape)


def _model(nodes, inputs, outputs, inits=(), ir=10):
    graph = helper.make_graph(nodes, "g", inputs, outputs, list(inits))
    m = helper.make_model(graph, opset_imports=[helper.make_opsetid("", 17)], ir_version=ir)
    onnx.checker.check_model(m, full_check=True)
    return m


def _branch(tag, op, k, src="x"):
    """A branch graph computing ``op(src, k)`` then Relu, written to ``<tag>_y``."""
    return helper.make_graph([_const(f"{tag}_k", k), helper.make_node(op, [src, f"{tag}_k"], [f"{tag}_t"]),
                              helper.make_node("Relu", [f"{tag}_t"], [f"{tag}_y"])],
                             tag, [], [_vi(f"{tag}_y")])


def _gate(cond, then, other, out, name):
    return helper.make_node("If", [cond], [out], then_branch=then, else_branch=other, name=name)


def sr_model(ir=10):
    """y = relu(x * 2) if sr == 16000 else relu(x + 1); ``z`` is read only by the else branch."""
    other = helper.make_graph([_const("e_k", 1.0), helper.make_node("Add", ["x", "z"], ["e_t"]),
                               helper.make_node("Add", ["e_t", "e_k"], ["e_y"])], "e", [], [_vi("e_y")])
    nodes = [_const("k16", 16000, np.int64), helper.make_node("Equal", ["sr", "k16"], ["is16"]),
             _gate("is16", _branch("t", "Mul", 2.0), other, "y", "sr_gate")]
    return _model(nodes, [_vi("x"), _vi("sr", I64, []), _vi("z")], [_vi("y")], ir=ir)


def nested_model():
    """silero-VAD-like: an If on sr whose taken branch holds a second If on sr, plus a Loop whose body
    holds an If on the outer condition (onnxsim's Python API leaves subgraphs alone)."""
    inner = _gate("is8", _branch("i8", "Sub", 3.0), _branch("i16", "Mul", 4.0), "inner_y", "inner_gate")
    then = helper.make_graph([_const("k8", 8000, np.int64), helper.make_node("Equal", ["sr", "k8"], ["is8"]),
                              inner], "then", [], [_vi("inner_y")])
    outer = _gate("is_fast", then, _branch("slow", "Add", 5.0), "gated", "outer_gate")
    body_then = helper.make_graph([_const("bt_k", 2.0), helper.make_node("Mul", ["acc", "bt_k"], ["bt_y"])],
                                  "bt", [], [_vi("bt_y")])
    body_else = helper.make_graph([_const("be_k", 1.0), helper.make_node("Sub", ["acc", "be_k"], ["be_y"])],
                                  "be", [], [_vi("be_y")])
    body = helper.make_graph(
        [helper.make_node("Identity", ["cin"], ["cout"]),
         _gate("is_fast", body_then, body_else, "acc_out", "body_gate")],
        "body", [helper.make_tensor_value_info("i", I64, []), helper.make_tensor_value_info("cin", TensorProto.BOOL, []),
                 _vi("acc")], [helper.make_tensor_value_info("cout", TensorProto.BOOL, []), _vi("acc_out")])
    nodes = [_const("k_lo", 12000, np.int64), helper.make_node("Less", ["k_lo", "sr"], ["is_fast"]), outer,
             _const("trip", 3, np.int64), _const("true", True, np.bool_),
             helper.make_node("Loop", ["trip", "true", "gated"], ["y"], body=body, name="loop")]
    return _model(nodes, [_vi("x"), _vi("sr", I64, [])], [_vi("y")])


def _run(model, feed):
    sess = ort.InferenceSession(model.SerializeToString(), providers=["CPUExecutionProvider"])
    names = {i.name for i in sess.get_inputs()}
    return sess.run(None, {k: v for k, v in feed.items() if k in names})


def _x(n=2):
    return np.random.default_rng(0).standard_normal((n, 4)).astype(np.float32)


def _ops(model) -> dict:
    return canon.op_histogram(model.graph)


def _inputs(model):
    return [i.name for i in model.graph.input if i.name not in {t.name for t in model.graph.initializer}]


# -- shapes --------------------------------------------------------------------------------------------

def test_dynamic_batch_is_fixed():
    m = _model([helper.make_node("Relu", ["x"], ["y"])], [_vi("x")], [_vi("y")])
    out, rec = canon.canonicalize_model(m, {"x": (2, 4)}, {})
    assert [d.dim_value for d in out.graph.input[0].type.tensor_type.shape.dim] == [2, 4]
    assert [d.dim_value for d in out.graph.output[0].type.tensor_type.shape.dim] == [2, 4]
    assert rec["rewrites"][0] == {"rewrite": "fixed input shapes", "detail": {"x": [2, 4]},
                                  "nodes_before": 1, "nodes_after": 1}
    assert m.graph.input[0].type.tensor_type.shape.dim[0].dim_param == "N"  # the argument is untouched


@pytest.mark.parametrize("shape", [(2, 4, 1), (2, 5)])
def test_conflicting_shape_is_refused(shape):
    m = _model([helper.make_node("Relu", ["x"], ["y"])], [_vi("x")], [_vi("y")])
    with pytest.raises(UsageError, match=r"'x'.*\['N', 4\]|x=.*\['N', 4\]"):
        canon.canonicalize_model(m, {"x": shape}, {})


def test_unknown_shape_name_lists_inputs():
    with pytest.raises(UsageError, match="unknown input.*nope") as e:
        canon.canonicalize_model(sr_model(), {"nope": (1, 4)}, {})
    assert "x, sr, z" in str(e.value)


# -- constant inputs and If folding -------------------------------------------------------------------

@pytest.mark.parametrize("sr", [16000, 8000])
def test_constant_sr_folds_the_if(sr):
    m = sr_model()
    x, z = _x(), _x() + 1
    want = _run(m, {"x": x, "z": z, "sr": np.array(sr, np.int64)})
    out, rec = canon.canonicalize_model(m, {}, {"sr": sr})
    assert "If" not in _ops(out) and "Equal" not in _ops(out)
    assert _inputs(out) == ["x", "z"]  # z is unused when sr=16000 but stays an input
    assert [o.name for o in out.graph.output] == ["y"]
    assert rec["removed_inputs"] == ["sr"]
    np.testing.assert_allclose(_run(out, {"x": x, "z": z})[0], want[0], rtol=1e-6)
    names = [r["rewrite"] for r in rec["rewrites"]]
    assert names[0] == f"constant input sr={sr}" and "onnxsim" in names
    assert rec["simplifier"] == {"used": "onnxsim", "fallbacks": []}
    # Constant, Equal, If + 3 nodes in each branch = 9: subgraphs count
    assert rec["nodes_before"] == 9 and rec["ops_before"]["If"] == 1
    assert rec["nodes_after"] == sum(rec["ops_after"].values()) < rec["nodes_before"]


def test_nested_ifs_and_if_in_loop_body_fold():
    m = nested_model()
    x = _x()
    for sr in (16000, 8000):  # 16000: outer then, inner else; 8000: outer else
        want = _run(m, {"x": x, "sr": np.array(sr, np.int64)})
        out, rec = canon.canonicalize_model(m, {"x": (2, 4)}, {"sr": sr})
        assert "If" not in _ops(out), (sr, _ops(out))
        assert _inputs(out) == ["x"]
        np.testing.assert_allclose(_run(out, {"x": x})[0], want[0], rtol=1e-6)
    folded = [r for r in rec["rewrites"] if r["rewrite"].startswith("If folded")]
    assert folded and any("loop/" in n for r in folded for n in r["detail"]["nodes"])


def test_onnxsim_alone_leaves_the_if_in_a_loop_body():
    """Why edgec folds Ifs itself: onnxsim's Python API does not simplify subgraphs."""
    onnxsim = pytest.importorskip("onnxsim")
    m = nested_model()
    m.graph.initializer.append(numpy_helper.from_array(np.array(16000, np.int64), "sr"))
    del m.graph.input[1]
    out, ok = onnxsim.simplify(m)
    assert ok and _ops(out).get("If") == 1  # the top-level Ifs folded, the Loop body's did not


def test_ir_version_newer_than_onnxsim_is_kept():
    m = sr_model(ir=12)
    out, rec = canon.canonicalize_model(m, {}, {"sr": 16000})
    assert rec["simplifier"]["used"] == "onnxsim" and out.ir_version == 12
    assert "If" not in _ops(out)


# -- simplifier fallbacks --------------------------------------------------------------------------------

def _boom(*a, **k):
    raise RuntimeError("forced failure\nsecond line")


def test_onnxsim_failure_falls_back_to_onnxslim(monkeypatch):
    onnxsim = pytest.importorskip("onnxsim")
    pytest.importorskip("onnxslim")
    monkeypatch.setattr(onnxsim, "simplify", _boom)
    m = sr_model()
    out, rec = canon.canonicalize_model(m, {}, {"sr": 16000})
    assert rec["simplifier"] == {"used": "onnxslim",
                                 "fallbacks": [{"tool": "onnxsim", "reason": "RuntimeError: forced failure"}]}
    assert "If" not in _ops(out) and _inputs(out) == ["x", "z"]
    x, z = _x(), _x()
    np.testing.assert_allclose(_run(out, {"x": x, "z": z})[0], np.maximum(x * 2, 0), rtol=1e-6)


def test_no_simplifier_still_folds(monkeypatch):
    import onnxslim

    monkeypatch.setitem(sys.modules, "onnxsim", None)  # import fails
    monkeypatch.setattr(onnxslim, "slim", _boom)
    m = nested_model()
    out, rec = canon.canonicalize_model(m, {"x": (2, 4)}, {"sr": 16000})
    assert rec["simplifier"]["used"] == "edgec-fold"
    assert [f["tool"] for f in rec["simplifier"]["fallbacks"]] == ["onnxsim", "onnxslim"]
    assert rec["simplifier"]["fallbacks"][0]["reason"].startswith(("ImportError", "ModuleNotFoundError"))
    assert "If" not in _ops(out)
    x = _x()
    want = _run(m, {"x": x, "sr": np.array(16000, np.int64)})
    np.testing.assert_allclose(_run(out, {"x": x})[0], want[0], rtol=1e-6)


def _renames(model, *a, **k):
    model.graph.output[0].name = "renamed"
    return model, True


def _breaks(model, *a, **k):
    model.graph.node[-1].input[0] = "nowhere"
    return model, True


@pytest.mark.parametrize("fake,reason", [(_renames, "output names changed"), (_breaks, "ValidationError")])
def test_invalid_simplifier_output_is_refused(monkeypatch, fake, reason):
    onnxsim = pytest.importorskip("onnxsim")
    monkeypatch.setattr(onnxsim, "simplify", fake)
    out, rec = canon.canonicalize_model(sr_model(), {}, {"sr": 16000})
    assert rec["simplifier"]["fallbacks"][0]["tool"] == "onnxsim"
    assert reason in rec["simplifier"]["fallbacks"][0]["reason"]
    assert rec["simplifier"]["used"] == "onnxslim" and [o.name for o in out.graph.output] == ["y"]


# -- values: parsing and refusals -----------------------------------------------------------------------

SR = TensorSpec("sr", (), "int64")


def test_parse_input_value():
    name, v = canon.parse_input_value("sr=16000", SR)
    assert name == "sr" and v.dtype == np.int64 and v.shape == () and v.item() == 16000
    _, v = canon.parse_input_value("scale=0.5, 2", [TensorSpec("scale", (2,), "float32")])
    assert v.dtype == np.float32 and v.tolist() == [0.5, 2.0]
    _, v = canon.parse_input_value("h=1,2,3,4,5,6", {"h": TensorSpec("h", (2, None), "int32")})
    assert v.shape == (2, 3)
    _, v = canon.parse_input_value("flag=true", TensorSpec("flag", (1,), "bool"))
    assert v.dtype == np.bool_ and v.tolist() == [True]


@pytest.mark.parametrize("text,match", [
    ("sr=abc", r"'abc' is not a number.*int64"),
    ("sr=16000,8000", r"2 value\(s\) given but the input needs 1.*'sr'"),
    ("sr=1.5", r"1.5 is not an integer.*'sr'"),
    ("sr=1e30", r"out of range for int64.*'sr'"),
    ("sr", r"not NAME=VALUE"),
    ("other=1", r"unknown input 'other'.*inputs are: sr"),
])
def test_bad_values_are_refused(text, match):
    with pytest.raises(UsageError, match=match):
        canon.parse_input_value(text, [SR])


@pytest.mark.parametrize("value,match", [("abc", "'abc' is not a number"), ([1, 2], r"2 value\(s\)"),
                                         (0.5, "not an integer")])
def test_bad_value_in_canonicalize_names_the_input(value, match):
    with pytest.raises(UsageError, match=f"--input-value sr.*{match}.*'sr' is int64"):
        canon.canonicalize_model(sr_model(), {}, {"sr": value})


def test_unknown_value_name_lists_inputs():
    with pytest.raises(UsageError, match="unknown input.*rate") as e:
        canon.canonicalize_model(sr_model(), {}, {"rate": 16000})
    assert "the model's inputs are: x, sr, z" in str(e.value)


# -- files -------------------------------------------------------------------------------------------------

def test_canonicalize_writes_atomically(tmp_path):
    src, dst = tmp_path / "m.onnx", tmp_path / "out" / "canon.onnx"
    onnx.save(sr_model(), str(src))
    rec = canon.canonicalize(src, dst, {"x": (2, 4)}, {"sr": np.array(16000, np.int64)})
    assert sorted(p.name for p in dst.parent.iterdir()) == ["canon.onnx"]
    out = onnx.load(str(dst))
    assert "If" not in _ops(out) and rec["inputs"] == ["x", "z"] and rec["outputs"] == ["y"]


def test_large_model_keeps_external_data(tmp_path, monkeypatch):
    monkeypatch.setattr(canon, "_LARGE_BYTES", 0)  # every model counts as large
    w = numpy_helper.from_array(w_array(), "w")  # over onnx's 1 KiB inline threshold
    m = _model([helper.make_node("Add", ["x", "w"], ["y"])], [_vi("x")], [_vi("y")], [w])
    src, dst = tmp_path / "m.onnx", tmp_path / "c.onnx"
    onnx.save(m, str(src))
    canon.canonicalize(src, dst, {"x": (64, 4)}, {})
    assert (tmp_path / "c.onnx.data").exists()
    x = _x(64)
    np.testing.assert_allclose(_run(onnx.load(str(dst)), {"x": x})[0], x + w_array(), rtol=1e-6)


def w_array():
    return np.arange(256, dtype=np.float32).reshape(64, 4)


def test_fold_constant_ifs_renames_branch_names():
    """Two Ifs whose branches use the same local names and hold initializers: after folding the names
    are unique and the numbers are those of the taken branches."""
    def branch(tag):
        k = numpy_helper.from_array(np.array(3.0, np.float32), "k")  # the same local names in both
        return helper.make_graph([helper.make_node("Mul", ["x", "k"], ["t"])], tag, [], [_vi("t")], [k])

    passthrough = helper.make_graph([helper.make_node("Identity", ["x"], ["t"])], "pass", [], [_vi("t")])
    nodes = [_gate("c", branch("a"), passthrough, "y1", "first"),
             _gate("c", passthrough, branch("b"), "y2", "second")]
    cond = numpy_helper.from_array(np.array(True), "c")
    m = _model(nodes, [_vi("x")], [_vi("y1"), _vi("y2")], [cond])
    folded = canon.fold_constant_ifs(m)
    assert folded == ["first", "second"] and "If" not in _ops(m)
    onnx.checker.check_model(m, full_check=True)
    x = _x()
    y1, y2 = _run(m, {"x": x})
    np.testing.assert_allclose(y1, x * 3, rtol=1e-6)
    np.testing.assert_array_equal(y2, x)


def test_build_with_a_constant_input_folds_the_if_and_checks_the_original(tmp_path):
    """``--input-value sr=16000`` end to end: the TFLite has no ``sr`` and no If; the ledger runs the
    original ONNX (sr fed as 16000) as the source."""
    import edgec

    m = sr_model()
    for v in list(m.graph.input) + list(m.graph.output):  # a static batch, so no --input-shape is needed
        if v.type.tensor_type.shape.dim and v.name != "sr":
            v.type.tensor_type.shape.dim[0].dim_value = 2
    path = tmp_path / "sr.onnx"
    onnx.save(m, str(path))
    res = edgec.build(edgec.BuildConfig(model=str(path), out=str(tmp_path / "out"), cache_dir=str(tmp_path / "c"),
                                        target="desktop-cpu", variants=("fp32",), synthetic_validation=True,
                                        bench=False, input_values={"sr": "16000"}))
    man = res.manifest
    assert [s["source"] for s in man["tflite_io"]["inputs"]] == ["x", "z"]
    step = next(s for s in man["steps"] if s["name"] == "onnx_canonicalize")
    done = [r["rewrite"] for r in step["canonicalization"]["rewrites"]]
    assert any("constant input sr=16000" in r for r in done)
    assert "If" not in step["canonicalization"]["ops_after"]
    assert man["parity"]["ok"] and man["parity"]["stages"][0]["stage"] == "onnx"
    with pytest.raises(UsageError, match="sr"):
        edgec.build(edgec.BuildConfig(model=str(path), out=str(tmp_path / "o2"), cache_dir=str(tmp_path / "c"),
                                      variants=("fp32",), synthetic_validation=True, bench=False,
                                      input_values={"sr": "abc"}))


def test_summary_and_report_list_the_rewrites(tmp_path):
    from edgec.report.summary import canonical_lines

    steps = [{"name": "onnx_canonicalize", "canonicalization": {"rewrites": [
        {"rewrite": "constant input sr=16000", "detail": None, "nodes_before": 30, "nodes_after": 30},
        {"rewrite": "onnxsim", "detail": "onnxsim 0.4.36", "nodes_before": 30, "nodes_after": 12}]}}]
    assert canonical_lines(steps) == ["canonicalization: constant input sr=16000 30->30 nodes; "
                                      "onnxsim (onnxsim 0.4.36) 30->12 nodes"]
