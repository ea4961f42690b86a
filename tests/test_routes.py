"""Route search: candidate order, translated retries, fallback on conversion failure and on parity
misses, cached failures, the error listing every attempt, and --route as the only attempt."""

from __future__ import annotations

import dataclasses
import json
from pathlib import Path

import pytest

import edgec
import tiny_models as tm
from edgec import convert
from edgec.errors import ConversionError, NoRouteError
from edgec.formats import Format, TensorSpec
from edgec.convert.planner import paths
from edgec.convert.routes import Search, retry_options

IMAGE = [TensorSpec("x", (1, 3, 32, 32), "float32")]


def _names(c):
    return [x.name for x in c.converters]


def test_candidates_cheapest_first_then_onnx2tf_writer_then_other_exporter():
    s = Search.for_source(Format.TORCH_MODULE, paths(Format.TORCH_MODULE, Format.TFLITE), IMAGE)
    got = []
    while (c := s.next()) is not None:
        got.append((_names(c), c.describe_options()))
    assert got == [(["torch_module_to_onnx", "onnx_to_tf", "tf_to_tflite"], {}),
                   (["torch_module_to_onnx", "onnx_to_tflite"], {}),
                   (["torch_module_to_tflite"], {}),       # litert-torch, the second converter family
                   (["torch_module_to_onnx", "onnx_to_tf", "tf_to_tflite"], {"exporter": "legacy"})]
    ts = Search.for_source(Format.TORCHSCRIPT, paths(Format.TORCHSCRIPT, Format.TFLITE), IMAGE)
    assert len([c for c in iter(ts.next, None)]) == 2  # TorchScript has one exporter


def test_retry_options_translate_onnx2tf_advice():
    generic = ["input_layout", "nms_dynamic_output", "static_shape"]
    assert retry_options(generic, {"Conv"}, IMAGE, False, {}) == {"input_layout": "as_given"}
    assert retry_options(generic, {"Conv"}, IMAGE, True, {}) == {}          # nothing is transposed
    assert retry_options(generic, {"Conv"}, [TensorSpec("ids", (1, 16), "int64")], False, {}) == {}
    assert retry_options(generic, {"NonMaxSuppression"}, IMAGE, False, {"input_layout": "as_given"}) == \
        {"nms_dynamic_output": True, "batch_size": 1}
    assert retry_options(generic, {"LSTM"}, [TensorSpec("a", (1, 8, 4), "float32")], False, {}) == \
        {"rnn_unroll": True}
    assert retry_options([], {"LSTM"}, IMAGE, False, {}) == {}              # no op failure, no retry


def test_a_failure_queues_its_retry_first_and_teaches_later_routes():
    s = Search.for_source(Format.ONNX, paths(Format.ONNX, Format.TFLITE), IMAGE)
    first = s.next()
    err = ConversionError("onnx2tf failed")
    err.advice = ["input_layout"]
    s.failed(first, err, {"Conv"})
    retry = s.next()
    assert _names(retry) == _names(first) and retry.onnx2tf_options() == {"input_layout": "as_given"}
    assert "every input kept as given" in retry.why
    s.failed(retry, ConversionError("still"), {"Conv"})
    taught = s.next()   # onnx2tf's own writer, with what the first failure taught
    assert _names(taught) == ["onnx_to_tflite"] and taught.onnx2tf_options() == {"input_layout": "as_given"}
    plain = s.next()
    assert _names(plain) == ["onnx_to_tflite"] and plain.onnx2tf_options() == {}
    assert s.next() is None


def test_onnx2tf_error_drops_its_cli_advice_and_names_the_node():
    from edgec.convert._onnx2tf import onnx2tf_error

    log = ("ERROR: The trace log is below.\nTraceback...\nValueError: Dimensions must be equal, 3 and 224\n"
           "ERROR: input_onnx_file_path: m.onnx\nERROR: onnx_op_name: /stem/Conv\n"
           "ERROR: Read this and deal with it. https://github.com/PINTO0309/onnx2tf#parameter-replacement\n"
           "ERROR: Alternatively, if the input OP has a dynamic dimension, use the -b or -ois option to rewrite it\n"
           "ERROR: If the input OP of ONNX before conversion is NHWC or an irregular channel arrangement other "
           "than NCHW, use the -kt or -kat option.\n"
           "ERROR: Also, for models that include NonMaxSuppression in the post-processing, try the -onwdt option.")
    err = onnx2tf_error("onnx2tf failed: ValueError: Dimensions must be equal", log, Path("m.onnx"))
    text = err.one_line()
    assert "/stem/Conv" in text and "Dimensions must be equal" in text
    for flag in ("-kat", "-ois", "-onwdt", "deal with it"):
        assert flag not in text
    assert err.advice == ["input_layout", "nms_dynamic_output", "static_shape"]


# -- builds ---------------------------------------------------------------------------------------

@pytest.fixture(scope="module")
def cnn_onnx(tmp_path_factory) -> Path:
    import torch

    p = tmp_path_factory.mktemp("routes") / "cnn.onnx"
    torch.onnx.export(tm.seeded(tm.TinyCNN), tuple(tm.cnn_inputs()), str(p), input_names=["x"],
                      output_names=["logits"], opset_version=17, dynamo=False)
    return p


def _cfg(model: Path, out: Path, cache: Path, **kw) -> edgec.BuildConfig:
    return edgec.BuildConfig(model=str(model), out=str(out), cache_dir=str(cache), target="desktop-cpu",
                             variants=("fp32",), synthetic_validation=True, bench=False, **kw)


def _patch(monkeypatch, name: str, run):
    conv = convert._REGISTRY[name]
    monkeypatch.setitem(convert._REGISTRY, name, dataclasses.replace(conv, run=run))
    return conv


def test_layout_failure_is_retried_with_inputs_as_given_and_cached(cnn_onnx, tmp_path, monkeypatch):
    convert.converters()
    real = convert._REGISTRY["onnx_to_tf"]
    calls = []

    def picky(ctx):  # fails like onnx2tf does on a layout it cannot infer, unless inputs stay as given
        calls.append(dict(ctx.settings.get("onnx2tf") or {}))
        if (ctx.settings.get("onnx2tf") or {}).get("input_layout") != "as_given":
            err = ConversionError("onnx2tf failed: ValueError: Dimensions must be equal at ONNX node '/Conv'")
            err.advice = ["input_layout", "static_shape", "nms_dynamic_output"]
            raise err
        return real.run(ctx)

    _patch(monkeypatch, "onnx_to_tf", picky)
    cache = tmp_path / "cache"
    res = edgec.build(_cfg(cnn_onnx, tmp_path / "out", cache))
    rs = res.manifest["route_search"]
    assert [a["ok"] for a in rs["attempts"]] == [False, True]
    assert rs["attempts"][0]["options"] == {} and "-kat" not in rs["attempts"][0]["reason"]
    assert rs["attempts"][1]["options"] == {"onnx2tf": {"input_layout": "as_given"}}
    assert rs["chosen"] == ["onnx", "saved_model", "tflite"] and "first within the fp32 parity budget" in rs["reason"]
    inp = res.manifest["tflite_io"]["inputs"][0]
    assert inp["shape"] == [1, 3, 32, 32]       # kept NCHW, as the retry said
    assert [s["name"] for s in res.manifest["steps"]] == ["onnx_canonicalize", "onnx_to_tf", "tf_to_tflite"]
    from edgec.report.summary import render_summary

    text = render_summary(res.manifest, tmp_path / "out")
    assert "attempt 1: onnx -> saved_model -> tflite  FAILED" in text and "attempt 2:" in text
    md = (tmp_path / "out" / "report.md").read_text()
    assert "Route search:" in md and "| 1 | onnx → saved_model → tflite | — | **failed**" in md
    assert "onnx2tf.input_layout=as_given" in md
    html = (tmp_path / "out" / "report.html").read_text()
    assert "<h2>Route search</h2>" in html and html.count('<span class="fail">FAIL</span>') >= 1
    assert len(calls) == 2
    again = edgec.build(_cfg(cnn_onnx, tmp_path / "out2", cache))
    assert len(calls) == 2                      # neither the failure nor the success re-ran
    assert all(a["cached"] for a in again.manifest["route_search"]["attempts"])


def test_parity_miss_falls_back_to_the_next_route(cnn_onnx, tmp_path, monkeypatch):
    import onnx
    from onnx import numpy_helper

    convert.converters()
    real = convert._REGISTRY["onnx_to_tf"]

    def off_by_two(ctx):  # converts, but the result is wrong: one weight doubled
        m = onnx.load(str(ctx.input))
        init = next(t for t in m.graph.initializer if numpy_helper.to_array(t).ndim == 4)
        init.CopyFrom(numpy_helper.from_array(numpy_helper.to_array(init) * 2, init.name))
        import tempfile

        bad = Path(tempfile.mkdtemp()) / "bad.onnx"
        onnx.save(m, str(bad))
        return real.run(dataclasses.replace(ctx, input=bad))

    _patch(monkeypatch, "onnx_to_tf", off_by_two)
    res = edgec.build(_cfg(cnn_onnx, tmp_path / "out", tmp_path / "cache"))
    first, second = res.manifest["route_search"]["attempts"][:2]
    assert not first["ok"] and "missed the fp32 parity budget" in first["reason"]
    assert first["parity"]["max_abs"] > 1e-4
    assert second["ok"] and second["route"] == ["onnx", "tflite"]
    assert res.manifest["route"] == ["onnx", "tflite"]
    assert res.manifest["parity"]["ok"]


def test_every_route_failing_lists_each_and_writes_nothing(cnn_onnx, tmp_path, monkeypatch):
    convert.converters()

    def broken(ctx):
        raise ConversionError(f"{ctx.output.name}: cannot convert op Foo")

    _patch(monkeypatch, "onnx_to_tf", broken)
    _patch(monkeypatch, "onnx_to_tflite", broken)
    out = tmp_path / "out"
    with pytest.raises(NoRouteError) as info:
        edgec.build(_cfg(cnn_onnx, out, tmp_path / "cache"))
    text = info.value.one_line()
    assert "(1) onnx -> saved_model -> tflite: ConversionError" in text
    assert "(2) onnx -> tflite: ConversionError" in text
    assert info.value.exit_code == 5
    assert not out.exists()


def test_forced_route_is_the_only_attempt(cnn_onnx, tmp_path):
    res = edgec.build(_cfg(cnn_onnx, tmp_path / "out", tmp_path / "cache", route=("onnx", "tflite")))
    rs = res.manifest["route_search"]
    assert len(rs["attempts"]) == 1 and rs["attempts"][0]["ok"] and rs["reason"] == "forced with --route"
    assert json.loads((tmp_path / "out" / "manifest.json").read_text())["route_search"]["chosen"] == ["onnx", "tflite"]


def test_grouped_convolution_takes_the_default_route(tmp_path):
    """onnx2tf builds a grouped conv (group 2 of 8 channels) with TF's legacy Keras, which its
    tf_keras model does not track; the SavedModel writer must still save its kernel."""
    import numpy as np
    import onnx
    from onnx import TensorProto, helper, numpy_helper

    rng = np.random.default_rng(0)
    inits = [numpy_helper.from_array(rng.standard_normal((8, 3, 1, 1)).astype(np.float32), "w0"),
             numpy_helper.from_array(rng.standard_normal((8, 4, 3, 3)).astype(np.float32), "w1"),
             numpy_helper.from_array(rng.standard_normal(8).astype(np.float32), "b1")]
    nodes = [helper.make_node("Conv", ["x", "w0"], ["c"]),
             helper.make_node("Conv", ["c", "w1", "b1"], ["y"], group=2, pads=[1, 1, 1, 1])]
    g = helper.make_graph(nodes, "grouped", [helper.make_tensor_value_info("x", TensorProto.FLOAT, [1, 3, 16, 16])],
                          [helper.make_tensor_value_info("y", TensorProto.FLOAT, [1, 8, 16, 16])], inits)
    m = helper.make_model(g, opset_imports=[helper.make_opsetid("", 13)])
    m.ir_version = 8
    path = tmp_path / "grouped.onnx"
    onnx.save(m, str(path))
    res = edgec.build(_cfg(path, tmp_path / "out", tmp_path / "cache"))
    rs = res.manifest["route_search"]
    assert [a["ok"] for a in rs["attempts"]] == [True] and rs["chosen"] == ["onnx", "saved_model", "tflite"]
    assert res.manifest["parity"]["ok"]
