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


def _stft_slices(tmp_path):
    """The split an STFT makes after its Conv: real part ``[:, :129]``, imaginary part ``[:, 129:]``,
    each exported as one Slice over all three axes with INT64_MAX ends on the untouched ones."""
    big = np.iinfo(np.int64).max
    inits = [numpy_helper.from_array(np.asarray(v, np.int64), n) for n, v in (
        ("s0", [0, 0, 0]), ("e0", [big, 129, big]), ("s1", [0, 129, 0]), ("e1", [big, big, big]),
        ("axes", [0, 1, 2]), ("steps", [1, 1, 1]))]
    w = numpy_helper.from_array(np.random.default_rng(2).standard_normal((258, 1, 16)).astype(np.float32), "w")
    nodes = [helper.make_node("Conv", ["x", "w"], ["c"], strides=[8]),
             helper.make_node("Slice", ["c", "s0", "e0", "axes", "steps"], ["re"]),
             helper.make_node("Slice", ["c", "s1", "e1", "axes", "steps"], ["im"]),
             helper.make_node("Mul", ["re", "re"], ["re2"]),
             helper.make_node("Mul", ["im", "im"], ["im2"]),
             helper.make_node("Add", ["re2", "im2"], ["y"])]
    graph = helper.make_graph(nodes, "stft", [helper.make_tensor_value_info("x", TensorProto.FLOAT, [1, 1, 64])],
                              [helper.make_tensor_value_info("y", TensorProto.FLOAT, [1, 129, 7])], [w, *inits])
    model = helper.make_model(graph, opset_imports=[helper.make_opsetid("", 13)], ir_version=9)
    path = tmp_path / "stft.onnx"
    onnx.save(model, str(path))
    return model, path


def test_multi_axis_slice_becomes_one_slice_per_axis(tmp_path):
    """Whole-axis parts of a Slice are dropped, the rest become one Slice per axis; the values stay
    exactly as they were."""
    model, _ = _stft_slices(tmp_path)
    x = np.random.default_rng(3).standard_normal((1, 1, 64)).astype(np.float32)
    want = _run(model, {"x": x})[0]
    assert apply_rewrites(model) == {"Slice->one Slice per axis": 2}
    onnx.checker.check_model(model, full_check=True)
    slices = [n for n in model.graph.node if n.op_type == "Slice"]
    assert len(slices) == 2 and all(len(n.input) == 5 for n in slices)
    np.testing.assert_array_equal(_run(model, {"x": x})[0], want)


def test_onnx2tf_multi_axis_slice_on_a_transposed_tensor(tmp_path):
    """onnx2tf 1.29 moves a multi-axis Slice's axes to channels-last but not its starts/ends, so on
    a Conv output ``[:, 129:]`` sliced the time axis (empty: the 0 batch that broke silero-vad's
    LSTM). After the rewrite each Slice has one axis and converts correctly."""
    pytest.importorskip("onnx2tf")
    from edgec.convert._onnx2tf import run_onnx2tf

    model, path = _stft_slices(tmp_path)
    x = np.random.default_rng(3).standard_normal((1, 1, 64)).astype(np.float32)
    want = _run(model, {"x": x})[0]
    keras_model, _, _, _, rewrites = run_onnx2tf(path, tmp_path / "work", [], {}, disable_model_save=True)
    assert rewrites == {"Slice->one Slice per axis": 2}
    got = np.asarray(keras_model(x))
    got = got if got.shape == want.shape else got.transpose(0, 2, 1)  # channels-last output
    np.testing.assert_allclose(got, want, rtol=1e-5, atol=1e-5)


def _conv1d_as_2d_slice(tmp_path):
    """jax2tf/tf2onnx's Conv1D (magika): Unsqueeze to [N, C, W, 1], Conv with a (k, 1) kernel, then
    ``[..., :1]`` exported as one Slice over all four axes (INT32_MAX ends on the whole ones) and a
    Squeeze of that last axis."""
    big = np.iinfo(np.int32).max
    rng = np.random.default_rng(4)
    inits = [numpy_helper.from_array(np.asarray(v, np.int64), n) for n, v in (
        ("u", [3]), ("s", [0, 0, 0, 0]), ("e", [big, big, big, 1]), ("axes", [0, 1, 2, 3]))]
    inits.append(numpy_helper.from_array(rng.standard_normal((6, 4, 3, 1)).astype(np.float32), "w"))
    nodes = [helper.make_node("Unsqueeze", ["x", "u"], ["x4"]),
             helper.make_node("Conv", ["x4", "w"], ["c"], kernel_shape=[3, 1]),
             helper.make_node("Slice", ["c", "s", "e", "axes"], ["c1"]),
             helper.make_node("Squeeze", ["c1", "u"], ["y"])]
    graph = helper.make_graph(nodes, "conv1d", [helper.make_tensor_value_info("x", TensorProto.FLOAT, [1, 4, 10])],
                              [helper.make_tensor_value_info("y", TensorProto.FLOAT, [1, 6, 8])], inits)
    model = helper.make_model(graph, opset_imports=[helper.make_opsetid("", 15)], ir_version=8)
    path = tmp_path / "conv1d.onnx"
    onnx.save(model, str(path))
    return model, path


def test_onnx2tf_four_axis_slice_after_conv(tmp_path, monkeypatch):
    """magika-v3: onnx2tf 1.29 keeps the ends [MAX, MAX, MAX, 1] in ONNX order after moving the Conv
    output to NHWC, so ``[..., :1]`` kept one of the 6 channels (the model's output came out with
    cosine ~0). The rewrite leaves one Slice on axis 3, exact in onnxruntime and right in TF."""
    pytest.importorskip("onnx2tf")
    import edgec.passes.onnx_rewrites as rw
    from edgec.convert._onnx2tf import run_onnx2tf

    model, path = _conv1d_as_2d_slice(tmp_path)
    x = np.random.default_rng(5).standard_normal((1, 4, 10)).astype(np.float32)
    want = _run(model, {"x": x})[0]
    rewritten = onnx.load(str(path))
    assert apply_rewrites(rewritten) == {"Slice->one Slice per axis": 1}
    assert [n.op_type for n in rewritten.graph.node].count("Slice") == 1
    np.testing.assert_array_equal(_run(rewritten, {"x": x})[0], want)

    def as_tf(keras_model):
        got = np.asarray(keras_model(x))
        return got if got.shape == want.shape else got.transpose(0, 2, 1)  # channels-last output

    keras_model, _, _, _, rewrites = run_onnx2tf(path, tmp_path / "work", [], {}, disable_model_save=True)
    assert rewrites == {"Slice->one Slice per axis": 1}
    np.testing.assert_allclose(as_tf(keras_model), want, rtol=1e-4, atol=1e-4)

    monkeypatch.setattr(rw, "apply_rewrites", lambda model: {})  # onnx2tf on the Slice as exported
    keras_model, *_ = run_onnx2tf(path, tmp_path / "raw", [], {}, disable_model_save=True)
    raw = np.asarray(keras_model(x))
    assert raw.size != want.size or not np.allclose(as_tf(keras_model), want, atol=1e-2)  # wrong before
