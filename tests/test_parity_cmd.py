"""``edgec parity A B``: two models on the same inputs, the first divergent layer named by tensor."""

from __future__ import annotations

import json

import numpy as np
import pytest

from edgec.cli.main import main
from tflite_edit import corrupt_weights, op_types


@pytest.fixture(scope="module")
def cnn(models, cache_dir, tmp_path_factory):
    d = tmp_path_factory.mktemp("pcmd")
    assert main(["build", str(models / "cnn.pt"), "-o", str(d / "out"), "-q", "--no-bench", "--variants", "fp32",
                 "--synthetic-validation", "--cache-dir", str(cache_dir)]) == 0
    good = d / "out" / "model_fp32.tflite"
    layer = op_types(good).index("DEPTHWISE_CONV_2D")     # the middle layer of the tiny CNN
    damaged = corrupt_weights(good, d / "damaged.tflite", layer)
    x = np.random.default_rng(7).standard_normal((6, 3, 32, 32)).astype(np.float32)
    np.savez(d / "nchw.npz", x=x)                         # keyed and laid out as A takes them:
    np.savez(d / "nhwc.npz", x=x.transpose(0, 2, 3, 1))   # the TorchScript NCHW, the TFLite NHWC
    return {"good": good, "bad": d / "damaged.tflite", "layer": damaged, "data": str(d / "nhwc.npz"),
            "nchw": str(d / "nchw.npz"), "pt": models / "cnn.pt"}


def _parity(capsys, *args):
    rc = main(["parity", *map(str, args), "--json"])
    return rc, json.loads(capsys.readouterr().out)


def test_corrupted_layer_is_named_first(cnn, capsys):
    rc, r = _parity(capsys, cnn["good"], cnn["bad"], "--data", cnn["data"])
    assert rc == 8 and not r["ok"]
    first = r["layers"]["first_divergent"]
    assert first["tensor"] == cnn["layer"]["tensor"] and first["op"] == "DEPTHWISE_CONV_2D"
    assert first["index"] == cnn["layer"]["index"] and first["matched_by"] == "name"
    assert r["layers"]["samples"] == 6 and r["data"]["samples"] == 6 and not r["synthetic"]
    assert main(["parity", str(cnn["good"]), str(cnn["bad"]), "--data", cnn["data"]]) == 8
    text = capsys.readouterr().out
    assert f"first divergent layer: #{first['index']} DEPTHWISE_CONV_2D" in text and cnn["layer"]["tensor"] in text


def test_same_model_has_no_divergent_layer(cnn, capsys):
    rc, r = _parity(capsys, cnn["good"], cnn["good"], "--data", cnn["data"])
    assert rc == 0 and r["ok"] and r["layers"]["first_divergent"] is None
    assert r["outputs"][0]["max_abs"] == 0.0 and r["layers"]["compared"] == len(op_types(cnn["good"]))


def test_torch_against_tflite_via_onnx_intermediates(cnn, capsys):
    rc, r = _parity(capsys, cnn["pt"], cnn["good"], "--data", cnn["nchw"])
    assert rc == 0 and r["formats"] == ["torchscript", "tflite"] and r["outputs"][0]["max_abs"] < 1e-4
    assert r["layers"]["first_divergent"] is None and r["layers"]["compared"] >= 4
    assert r["layers"]["reference_kind"] == "onnx" and r["layers"]["worst"][0]["cosine"] > 0.99999
    rc, r = _parity(capsys, cnn["pt"], cnn["bad"], "--data", cnn["nchw"])
    assert rc == 8 and r["layers"]["first_divergent"]["tensor"] == cnn["layer"]["tensor"]
    assert r["layers"]["first_divergent"]["matched_by"] == "value"


def test_data_is_required_unless_synthetic(cnn, capsys):
    assert main(["parity", str(cnn["good"]), str(cnn["bad"])]) == 2
    assert "--synthetic" in capsys.readouterr().err
    rc, r = _parity(capsys, cnn["good"], cnn["good"], "--synthetic", "--budget", "cosine=0.9")
    assert rc == 0 and r["synthetic"] and r["budget"] == {"cosine": 0.9}
    assert main(["parity", str(cnn["good"]), str(cnn["pt"].parent / "nope.tflite"), "--synthetic"]) == 3
