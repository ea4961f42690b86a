"""edgec.passes.onnx_rewrites: each rewrite keeps the numbers (onnxruntime before vs after), in the
opset-13 (axes attribute) and opset-18 (axes input) forms, and onnx2tf converts what it produces."""

from __future__ import annotations

import numpy as np
import pytest

onnx = pytest.importorskip("onnx")
ort = pytest.importorskip("onnxruntime")
from onnx import TensorProto, helper, numpy_helper  # noqa: E402

from edgec.passes.onnx_rewrites import apply_rewrites  # noqa: E402

SHAPE = (2, 3, 4)


def _reduce_model(op: str, opset: int, axes, keepdims: int = 1, noop: int | None = None):
    """y = op(x) with the given axes (None: no axes), in the form ``opset`` requires."""
    attrs, inputs, inits = {"keepdims": keepdims}, ["x"], []
    if noop is not None:
        attrs["noop_with_empty_axes"] = noop
    if axes is not None:
        if opset >= 18:
            inits.append(numpy_helper.from_array(np.asarray(axes, np.int64), "axes"))
            inputs.append("axes")
        else:
            attrs["axes"] = list(axes)
    node = helper.make_node(op, inputs, ["y"], name="reduce", **attrs)
    graph = helper.make_graph([node], "g", [helper.make_tensor_value_info("x", TensorProto.FLOAT, SHAPE)],
                              [helper.make_tensor_value_info("y", TensorProto.FLOAT,
                                                             _reduced_shape(axes, keepdims, noop))], inits)
    return helper.make_model(graph, opset_imports=[helper.make_opsetid("", opset)], ir_version=9)


def _reduced_shape(axes, keepdims: int, noop: int | None) -> list[int]:
    if axes is None and noop:
        return list(SHAPE)
    ax = {a % len(SHAPE) for a in axes} if axes is not None else set(range(len(SHAPE)))
    if keepdims:
        return [1 if i in ax else d for i, d in enumerate(SHAPE)]
    return [d for i, d in enumerate(SHAPE) if i not in ax]


def _run(model, feed: dict) -> list[np.ndarray]:
    sess = ort.InferenceSession(model.SerializeToString(), providers=["CPUExecutionProvider"])
    return sess.run(None, feed)


def _x(seed: int = 0) -> np.ndarray:
    return np.random.default_rng(seed).standard_normal(SHAPE).astype(np.float32)  # negatives matter for L1


def _ops(model) -> list[str]:
    return [n.op_type for n in model.graph.node]


@pytest.mark.parametrize("op,name,replacement", [
    ("ReduceL2", "ReduceL2->Sqrt(ReduceSumSquare)", ["ReduceSumSquare", "Sqrt"]),
    ("ReduceL1", "ReduceL1->ReduceSum(Abs)", ["Abs", "ReduceSum"]),
])
@pytest.mark.parametrize("opset", [13, 18])
@pytest.mark.parametrize("axes,keepdims", [((1,), 1), ((1,), 0), ((0, 2), 1), ((-1,), 0), (None, 1), (None, 0)])
def test_rewrite_keeps_numbers(op, name, replacement, opset, axes, keepdims):
    model = _reduce_model(op, opset, axes, keepdims)
    x = _x()
    want = _run(model, {"x": x})[0]
    counts = apply_rewrites(model)
    onnx.checker.check_model(model, full_check=True)
    assert counts == {name: 1}
    assert _ops(model) == replacement
    assert [i.name for i in model.graph.input] == ["x"] and [o.name for o in model.graph.output] == ["y"]
    got = _run(model, {"x": x})[0]
    assert got.shape == want.shape
    np.testing.assert_allclose(got, want, rtol=1e-6, atol=1e-6)


@pytest.mark.parametrize("op", ["ReduceL2", "ReduceL1"])
def test_noop_with_empty_axes_becomes_identity(op):
    # onnxruntime 1.23 refuses this form (it reduces all axes, then finds the output size wrong), so the
    # reference is onnx's own reference implementation of the spec: the input comes back unchanged.
    from onnx.reference import ReferenceEvaluator

    model = _reduce_model(op, 18, None, noop=1)
    x = _x()
    want = ReferenceEvaluator(model).run(None, {"x": x})[0]
    np.testing.assert_array_equal(want, x)
    apply_rewrites(model)
    assert _ops(model) == ["Identity"]
    np.testing.assert_array_equal(_run(model, {"x": x})[0], want)


@pytest.mark.parametrize("op", ["ReduceL2", "ReduceL1"])
def test_noop_with_given_axes_still_reduces(op):
    model = _reduce_model(op, 18, (2,), noop=1)
    x = _x()
    want = _run(model, {"x": x})[0]
    assert apply_rewrites(model)
    np.testing.assert_allclose(_run(model, {"x": x})[0], want, rtol=1e-6, atol=1e-6)


def test_run_time_axes_with_noop_are_left_alone():
    node = helper.make_node("ReduceL2", ["x", "axes"], ["y"], noop_with_empty_axes=1)
    graph = helper.make_graph([node], "g", [helper.make_tensor_value_info("x", TensorProto.FLOAT, SHAPE),
                                            helper.make_tensor_value_info("axes", TensorProto.INT64, [None])],
                              [helper.make_tensor_value_info("y", TensorProto.FLOAT, None)])
    model = helper.make_model(graph, opset_imports=[helper.make_opsetid("", 18)], ir_version=9)
    assert apply_rewrites(model) == {}
    assert _ops(model) == ["ReduceL2"]


def test_rewrites_inside_subgraphs_and_avoid_name_clashes():
    def branch(tag: str):
        # The rewrite's first choice of intermediate name is taken, so it has to pick another.
        taken = helper.make_node("Neg", ["x"], [f"{tag}__sumsq"])
        norm = helper.make_node("ReduceL2", ["x"], [f"{tag}"], axes=[1], keepdims=1)
        out = helper.make_node("Add", [tag, f"{tag}__sumsq"], [f"{tag}_out"])
        return helper.make_graph([taken, norm, out], tag, [],
                                 [helper.make_tensor_value_info(f"{tag}_out", TensorProto.FLOAT, SHAPE)])

    node = helper.make_node("If", ["c"], ["y"], then_branch=branch("a"), else_branch=branch("b"))
    graph = helper.make_graph([node], "g", [helper.make_tensor_value_info("c", TensorProto.BOOL, []),
                                            helper.make_tensor_value_info("x", TensorProto.FLOAT, SHAPE)],
                              [helper.make_tensor_value_info("y", TensorProto.FLOAT, SHAPE)])
    model = helper.make_model(graph, opset_imports=[helper.make_opsetid("", 13)], ir_version=9)
    x = _x()
    want = [_run(model, {"c": np.array(c), "x": x})[0] for c in (True, False)]
    assert apply_rewrites(model) == {"ReduceL2->Sqrt(ReduceSumSquare)": 2}
    onnx.checker.check_model(model, full_check=True)
    for c, w in zip((True, False), want):
        np.testing.assert_allclose(_run(model, {"c": np.array(c), "x": x})[0], w, rtol=1e-6, atol=1e-6)


def test_onnx2tf_converts_the_rewritten_graph(tmp_path):
    """The opset-18 ReduceL2 that onnx2tf 1.29 refuses converts after the rewrite; a 3-D float input
    and a 2-D int64 input keep their shape and dtype (no channels-last transpose)."""
    pytest.importorskip("onnx2tf")
    from edgec.convert._onnx2tf import run_onnx2tf

    axes = numpy_helper.from_array(np.asarray([-1], np.int64), "axes")
    nodes = [helper.make_node("ReduceL2", ["x", "axes"], ["n"], keepdims=1),
             helper.make_node("Div", ["x", "n"], ["y"]),
             helper.make_node("Cast", ["ids"], ["f"], to=TensorProto.FLOAT),
             helper.make_node("ReduceL1", ["f", "axes"], ["z"], keepdims=0)]
    graph = helper.make_graph(nodes, "g", [helper.make_tensor_value_info("x", TensorProto.FLOAT, SHAPE),
                                           helper.make_tensor_value_info("ids", TensorProto.INT64, [2, 5])],
                              [helper.make_tensor_value_info("y", TensorProto.FLOAT, SHAPE),
                               helper.make_tensor_value_info("z", TensorProto.FLOAT, [2])], [axes])
    model = helper.make_model(graph, opset_imports=[helper.make_opsetid("", 18)], ir_version=9)
    path = tmp_path / "norm.onnx"
    onnx.save(model, str(path))
    x = _x()
    ids = np.random.default_rng(1).integers(-50, 50, (2, 5)).astype(np.int64)
    want = _run(model, {"x": x, "ids": ids})

    keras_model, _, _, _, rewrites = run_onnx2tf(path, tmp_path / "work", [], {}, disable_model_save=True)
    assert rewrites == {"ReduceL2->Sqrt(ReduceSumSquare)": 1, "ReduceL1->ReduceSum(Abs)": 1}
    assert [tuple(t.shape) for t in keras_model.inputs] == [SHAPE, (2, 5)]
    assert [t.dtype.name for t in keras_model.inputs] == ["float32", "int64"]
    got = [np.asarray(t) for t in keras_model([x, ids])]
    for g, w in zip(got, want):
        np.testing.assert_allclose(g, w, rtol=1e-5, atol=1e-6)
    assert onnx.load(str(path)).graph.node[0].op_type == "ReduceL2"  # the caller's file is untouched
