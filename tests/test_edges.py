"""Every edge of the conversion graph, on tiny models built in code.

Each built fp32 .tflite is checked against its source within 1e-4 max abs error twice: by edgec's own
parity ledger and independently here (torch/onnxruntime/TF vs the TFLite run from the manifest's I/O).
"""

from __future__ import annotations

import json
from pathlib import Path

import numpy as np
import pytest

import edgec
import tiny_models as tm
from conftest import run_tflite
from edgec.convert import converters

ATOL = 1e-4


def _build(cache_dir, out: Path, **kw) -> dict:
    cfg = edgec.BuildConfig(out=str(out), cache_dir=str(cache_dir), target=kw.pop("target", "desktop-cpu"),
                            variants=kw.pop("variants", ("fp32",)), synthetic_validation=True, **kw)
    result = edgec.build(cfg)
    manifest = json.loads((out / "manifest.json").read_text())
    assert manifest == json.loads(json.dumps(result.manifest, default=str))
    return manifest


def _fp32_ledger(manifest: dict) -> dict:
    return next(s for s in manifest["parity"]["stages"] if s["stage"] == "tflite:fp32")


def _torch_outputs(module, inputs) -> list[np.ndarray]:
    import torch

    with torch.no_grad():
        out = module(*inputs)
    out = out if isinstance(out, (tuple, list)) else (out,)
    return [o.numpy() for o in out]


def _assert_close(got: list[np.ndarray], ref: list[np.ndarray]) -> None:
    assert len(got) == len(ref)
    for g, r in zip(got, ref):
        assert g.shape == r.shape
        assert float(np.max(np.abs(g - r))) <= ATOL


def test_every_registered_edge_has_a_test_here():
    tested = {"torchscript_to_onnx", "exported_program_to_onnx", "torch_module_to_onnx", "onnx_to_tf",
              "tf_to_tflite", "onnx_to_tflite", "keras_to_tf", "tf_to_onnx"}
    tested |= {"torch_module_to_tflite", "exported_program_to_tflite"}  # litert-torch: tests/test_litert_torch.py
    assert {c.name for c in converters()} == tested


def test_cnn_torchscript_default_route(models, cache_dir, tmp_path):
    m = _build(cache_dir, tmp_path / "out", model=str(models / "cnn.pt"), target="rpi4",
               variants=("fp32", "fp16", "dynamic_int8"))
    assert m["route"] == ["torchscript", "onnx", "saved_model", "tflite"]
    assert [s["name"] for s in m["steps"]][:3] == ["torchscript_to_onnx", "onnx_canonicalize", "onnx_to_tf"]
    assert m["steps"][0]["exporter"] == "legacy" and m["steps"][0]["opset"] == 17
    assert {a["path"] for a in m["artifacts"]} >= {"model.onnx", "saved_model", "model_fp32.tflite",
                                                   "model_fp16.tflite", "model_dynamic_int8.tflite"}
    for a in m["artifacts"]:
        assert (tmp_path / "out" / a["path"]).exists()
        assert a["sha256"] == edgec.formats.digest(tmp_path / "out" / a["path"])
    row = m["tflite_io"]["inputs"][0]
    assert row["layout"] == "NHWC" and row["shape"] == [1, 32, 32, 3]
    assert _fp32_ledger(m)["ok"] and _fp32_ledger(m)["outputs"][0]["max_abs"] <= ATOL
    x = tm.cnn_inputs()[0]
    ref = _torch_outputs(tm.seeded(tm.TinyCNN), (x,))
    _assert_close(run_tflite(tmp_path / "out" / "model_fp32.tflite", m, {"x": x.numpy()}), ref)
    sizes = {a["variant"]: a["bytes"] for a in m["artifacts"] if a["format"] == "tflite"}
    assert sizes["fp16"] < sizes["fp32"]


def test_cnn_keep_layout(models, cache_dir, tmp_path):
    m = _build(cache_dir, tmp_path / "out", model=str(models / "cnn.pt"), keep_layout=True)
    row = m["tflite_io"]["inputs"][0]
    assert row["shape"] == [1, 3, 32, 32] and row["layout"] == "NCHW"
    assert _fp32_ledger(m)["outputs"][0]["max_abs"] <= ATOL


def test_transformer_torchscript_erf_gelu(models, cache_dir, tmp_path):
    """Legacy export writes GELU as Erf; edgec keeps it on builtin ops (no Flex) within 1e-4."""
    m = _build(cache_dir, tmp_path / "out", model=str(models / "transformer.pt"))
    row = m["tflite_io"]["inputs"][0]
    assert row["shape"] == [1, 16, 32] and not row["perm"] or row["perm"] == [0, 1, 2]
    info = edgec.inspect(tmp_path / "out" / "model_fp32.tflite")
    assert not any(op.startswith("CUSTOM") for op in info["op_histogram"])
    x = tm.transformer_inputs()[0]
    ref = _torch_outputs(tm.seeded(tm.TinyTransformer), (x,))
    _assert_close(run_tflite(tmp_path / "out" / "model_fp32.tflite", m, {"x": x.numpy()}), ref)


def test_transformer_exported_program(cache_dir, tmp_path):
    import torch

    pt2 = tmp_path / "transformer.pt2"
    torch.export.save(torch.export.export(tm.seeded(tm.TinyTransformer), tm.transformer_inputs()), str(pt2))
    m = _build(cache_dir, tmp_path / "out", model=str(pt2))
    assert m["route"][0] == "exported_program"
    assert m["steps"][0]["exporter"] == "dynamo" and m["steps"][0]["opset"] == 20
    assert _fp32_ledger(m)["ok"]
    x = tm.transformer_inputs()[0]
    ref = _torch_outputs(tm.seeded(tm.TinyTransformer), (x,))
    name = m["inputs"][0]["name"]
    _assert_close(run_tflite(tmp_path / "out" / "model_fp32.tflite", m, {name: x.numpy()}), ref)


def test_two_input_factory(cache_dir, tmp_path, monkeypatch):
    monkeypatch.syspath_prepend(str(Path(__file__).parent))
    m = _build(cache_dir, tmp_path / "out", factory="tiny_models:two_input_factory")
    assert m["route"][0] == "torch_module"
    assert [i["name"] for i in m["inputs"]] == ["image", "features"]
    assert len(m["outputs"]) == 2
    layouts = {r["source"]: r["layout"] for r in m["tflite_io"]["inputs"]}
    assert layouts["image"] == "NHWC"
    image, features = tm.two_inputs()
    ref = _torch_outputs(tm.seeded(tm.TwoInput), (image, features))
    got = run_tflite(tmp_path / "out" / "model_fp32.tflite", m, {"image": image.numpy(), "features": features.numpy()})
    _assert_close(got, ref)


def test_trusted_pickle(cache_dir, tmp_path):
    import torch

    p = tmp_path / "whole_module.pth"
    torch.save(tm.seeded(tm.TinyCNN), str(p))
    m = _build(cache_dir, tmp_path / "out", model=str(p), trust_pickle=True,
               input_shapes={"x": (1, 3, 32, 32)})
    assert m["route"][0] == "torch_module"
    assert _fp32_ledger(m)["ok"]


def test_onnx_direct_route_and_dynamic_dims(models, cache_dir, tmp_path):
    """--route onnx,tflite uses onnx2tf's own TFLite export; dynamic H/W need --input-shape."""
    import torch

    onnx_path = tmp_path / "cnn_dyn.onnx"
    torch.onnx.export(tm.seeded(tm.TinyCNN), tm.cnn_inputs(), str(onnx_path), input_names=["x"],
                      output_names=["logits"], dynamic_axes={"x": {0: "batch", 2: "h", 3: "w"}}, dynamo=False, opset_version=17)
    with pytest.raises(edgec.errors.UnsupportedModelError, match="dynamic"):
        _build(cache_dir, tmp_path / "nope", model=str(onnx_path), route=("onnx", "tflite"))
    assert not (tmp_path / "nope").exists()
    m = _build(cache_dir, tmp_path / "out", model=str(onnx_path), route=("onnx", "tflite"),
               input_shapes={"x": (1, 3, 32, 32)})
    assert m["route"] == ["onnx", "tflite"]
    assert [s["name"] for s in m["steps"]] == ["onnx_canonicalize", "onnx_to_tflite"]
    assert _fp32_ledger(m)["outputs"][0]["max_abs"] <= ATOL
    x = tm.cnn_inputs()[0]
    ref = _torch_outputs(tm.seeded(tm.TinyCNN), (x,))
    _assert_close(run_tflite(tmp_path / "out" / "model_fp32.tflite", m, {"x": x.numpy()}), ref)


def test_onnx_direct_route_runs_onnx2tf_once_for_every_variant(models, tmp_path, monkeypatch):
    """fp32, fp16 and dynamic-range int8 of the direct route come from one onnx2tf run (it writes all
    three); each variant's file is still its own, checked against torch."""
    import edgec.convert.onnx_to_tflite as direct
    from edgec.formats.tflite import read_tflite

    import torch

    onnx_path = tmp_path / "cnn.onnx"
    torch.onnx.export(tm.seeded(tm.TinyCNN), tm.cnn_inputs(), str(onnx_path), input_names=["x"],
                      output_names=["logits"], dynamo=False, opset_version=17)
    calls = []
    real = direct.run_onnx2tf
    monkeypatch.setattr(direct, "run_onnx2tf", lambda *a, **k: calls.append(k) or real(*a, **k))
    m = _build(tmp_path / "cache", tmp_path / "out", model=str(onnx_path), route=("onnx", "tflite"),
               variants=("fp32", "fp16", "dynamic_int8"))
    assert len(calls) == 1 and calls[0]["output_dynamic_range_quantized_tflite"]
    assert [s["name"] for s in m["steps"]].count("onnx_to_tflite") == 3
    files = {v: (tmp_path / "out" / f"model_{v}.tflite").read_bytes() for v in ("fp32", "fp16", "dynamic_int8")}
    assert len(set(files.values())) == 3  # each variant its own file of that one run
    assert "DEQUANTIZE" in read_tflite(tmp_path / "out" / "model_fp16.tflite").histogram
    x = tm.cnn_inputs()[0]
    ref = _torch_outputs(tm.seeded(tm.TinyCNN), (x,))
    _assert_close(run_tflite(tmp_path / "out" / "model_fp32.tflite", m, {"x": x.numpy()}), ref)
    assert _fp32_ledger(m)["outputs"][0]["max_abs"] <= ATOL


def _keras_model(path: Path) -> Path:
    import keras

    keras.utils.set_random_seed(0)
    inp = keras.Input((12,), name="features")
    h = keras.layers.Dense(16, activation="relu")(inp)
    out = keras.layers.Dense(4, name="scores")(h)
    model = keras.Model(inp, out)
    model.save(str(path))
    return path


def test_keras_to_tf_to_tflite(cache_dir, tmp_path):
    import keras

    path = _keras_model(tmp_path / "mlp.keras")
    m = _build(cache_dir, tmp_path / "out", model=str(path))
    assert m["route"] == ["keras", "saved_model", "tflite"]
    assert _fp32_ledger(m)["ok"]
    x = np.random.default_rng(0).standard_normal((1, 12)).astype(np.float32)
    ref = keras.models.load_model(str(path))(x).numpy()
    got = run_tflite(tmp_path / "out" / "model_fp32.tflite", m, {m["inputs"][0]["name"]: x})
    _assert_close(got, [ref])


def test_tf_to_onnx_cross_check_route(cache_dir, tmp_path):
    """SavedModel -> ONNX (tf2onnx) -> TFLite (onnx2tf): the cross-check edge, parity-checked."""
    keras_path = _keras_model(tmp_path / "mlp.keras")
    first = _build(cache_dir, tmp_path / "sm", model=str(keras_path))
    sm = tmp_path / "sm" / "saved_model"
    m = _build(cache_dir, tmp_path / "out", model=str(sm), route=("saved_model", "onnx", "tflite"))
    assert m["route"] == ["saved_model", "onnx", "tflite"]
    assert [s["name"] for s in m["steps"]] == ["tf_to_onnx", "onnx_canonicalize", "onnx_to_tflite"]
    onnx_stage = next(s for s in m["parity"]["stages"] if s["stage"] == "onnx")
    assert onnx_stage["outputs"][0]["max_abs"] <= ATOL
    assert _fp32_ledger(m)["outputs"][0]["max_abs"] <= ATOL
    assert first["inputs"][0]["shape"] == [None, 12] or first["inputs"][0]["shape"][1] == 12


def test_tflite_input_skips_conversion(models, cache_dir, tmp_path):
    first = _build(cache_dir, tmp_path / "a", model=str(models / "cnn.pt"))
    m = _build(cache_dir, tmp_path / "b", model=str(tmp_path / "a" / "model_fp32.tflite"))
    assert m["route"] == ["tflite"] and m["steps"] == []
    assert [a["sha256"] for a in m["artifacts"]] == [
        next(a["sha256"] for a in first["artifacts"] if a["path"] == "model_fp32.tflite")]
