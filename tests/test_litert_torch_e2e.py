"""The real models through the litert-torch route and `--compare-routes`:

- pretrained EfficientNet-Lite0 via `--factory` and as a `.pt2`, `--compare-routes` for rpi4 with
  real photos (calibration and validation from disjoint photo sets): every route succeeds, fp32
  within 1e-4 of torch on each (checked here independently of edgec's ledger), int8 on each route
  that makes it calibrated on the real photos, the manifest and report show the comparison and the
  chosen route with its reason, and the routes agree with each other;
- all-MiniLM-L6-v2 via `--factory` forced through litert-torch: embeddings within 1e-3 and cosine
  >= 0.9999 of sentence-transformers.

Slow: each EfficientNet comparison builds three routes with their variants and ledgers (minutes).
"""

from __future__ import annotations

import json

import numpy as np
import pytest

pytestmark = pytest.mark.slow

VARIANTS = "fp32,fp16,dynamic_int8,int8"
SENTENCES = ["A man is eating food.", "A man is eating a piece of bread.", "The new movie is awesome.",
             "The new movie is so great.", "A man is riding a white horse on an enclosed ground.",
             "A monkey is playing drums.", "Two men pushed carts through the woods.",
             "The quick brown fox jumps over the lazy dog near the river bank at dawn."]
MAX_ABS, MIN_COSINE = 1e-3, 0.9999      # the acceptance of all-MiniLM-L6-v2 on either route
CALIBRATION_SAMPLES = 48
VALIDATION_SAMPLES = 40   # real photos from other scenes than the calibration's; 40 keeps 3 routes' ledgers short


@pytest.fixture(scope="module")
def photos(tmp_path_factory):
    from edgec.data.examples import photo_sets

    return photo_sets(tmp_path_factory.mktemp("photos"))


@pytest.fixture(scope="module")
def pt2(tmp_path_factory):
    import torch

    from edgec.data.examples import efficientnet_lite0

    model, example = efficientnet_lite0()
    path = tmp_path_factory.mktemp("pt2") / "efficientnet_lite0.pt2"
    torch.export.save(torch.export.export(model.eval(), tuple(example)), str(path))
    return path


def _compare_build(d, photos, source: list[str], variants: str) -> tuple:
    from edgec.cli.main import main

    calibration, validation = photos
    out = d / "out"
    assert main(["build", *source, "--target", "rpi4", "-o", str(out), "-q", "--cache-dir", str(d / "cache"),
                 "--compare-routes", "--variants", variants, "--calibration-data", str(calibration),
                 "--calibration-samples", str(CALIBRATION_SAMPLES), "--validation-data", str(validation),
                 "--validation-samples", str(VALIDATION_SAMPLES)]) == 0
    return out, json.loads((out / "manifest.json").read_text())


@pytest.fixture(scope="module")
def factory_build(tmp_path_factory, photos):
    return _compare_build(tmp_path_factory.mktemp("effnet-factory"), photos,
                          ["--factory", "edgec.data.examples:efficientnet_lite0"], VARIANTS)


@pytest.fixture(scope="module")
def pt2_build(tmp_path_factory, photos, pt2):
    return _compare_build(tmp_path_factory.mktemp("effnet-pt2"), photos, [str(pt2)], "fp32,int8")


def _fp32_files(out, m) -> dict[str, object]:
    files = {}
    for a in m["route_search"]["attempts"]:
        rel = "model_fp32.tflite" if a.get("chosen") else \
            next(x["path"] for x in a["artifacts"] if x["variant"] == "fp32")
        files[a["converter"][-1]] = out / rel
    return files


def _run_nhwc(path, x_nchw: np.ndarray) -> np.ndarray:
    """The one-input, one-output TFLite on an NCHW image, fed channels-last (no edgec code)."""
    from ai_edge_litert import interpreter as lite

    runner = lite.Interpreter(model_path=str(path)).get_signature_runner("serving_default")
    (name,), (out,) = runner.get_input_details(), runner.get_output_details()
    return runner(**{name: np.ascontiguousarray(x_nchw.transpose(0, 2, 3, 1))})[out]


def _check(out, m, src_format: str, variants: set[str]) -> None:
    import torch

    from edgec.data.examples import efficientnet_lite0, normalized_nchw, photo
    from edgec.formats.tflite import read_tflite

    rs = m["route_search"]
    assert rs["compared"] and rs["chosen"] == m["route"]
    routes = [a["route"] for a in rs["attempts"]]
    assert [src_format, "tflite"] in routes and [src_format, "onnx", "saved_model", "tflite"] in routes
    assert all(a["ok"] for a in rs["attempts"]), [a["reason"] for a in rs["attempts"]]
    assert "fastest fp32 p50 on this machine" in rs["reason"] and "rpi4" in rs["reason"]
    assert rs["cross_check"]["ran"] and rs["cross_check"]["agree"], rs["cross_check"]
    model, _ = efficientnet_lite0()
    files = _fp32_files(out, m)
    for conv, path in files.items():
        assert read_tflite(path).inputs[0].shape == (1, 224, 224, 3), f"{conv}: input not NHWC"
    for name, cls in (("chelsea", 285), ("coffee", 967)):
        x = normalized_nchw(photo(name))
        with torch.no_grad():
            ref = model(torch.from_numpy(x)).numpy()
        for conv, path in files.items():
            got = _run_nhwc(path, x)
            assert float(np.max(np.abs(got - ref))) <= 1e-4, conv
            assert int(np.argmax(got)) == cls
    for a in rs["attempts"]:
        assert a["parity"]["max_abs"] <= 1e-4
        made = set(a["variants"]) | {s["variant"] for s in a.get("skipped_variants", [])}
        assert made == variants
        if a["converter"][-1] in ("tf_to_tflite", f"{src_format}_to_tflite"):
            assert "int8" in a["variants"]  # calibrated on the real photos on both converter families
    assert not m["calibration"]["synthetic"] and m["calibration"]["samples"] == CALIBRATION_SAMPLES
    litert = next(a for a in rs["attempts"] if a["route"] == [src_format, "tflite"])
    assert litert["measured"]["transposes"] == litert["measured"]["op_histogram"].get("TRANSPOSE", 0)
    md = (out / "report.md").read_text()
    assert "Route comparison" in md and rs["reason"][:40] in md
    assert "<h2>Route comparison</h2>" in (out / "report.html").read_text()


def test_factory_compare_routes_on_real_photos(factory_build):
    out, m = factory_build
    _check(out, m, "torch_module", set(VARIANTS.split(",")))


def test_pt2_compare_routes_on_real_photos(pt2_build):
    out, m = pt2_build
    _check(out, m, "exported_program", {"fp32", "int8"})


def test_minilm_through_litert_torch(tmp_path_factory):
    import edgec
    import real_models as rm
    from edgec.formats import TensorSpec
    from edgec.runtime.runners import TFLiteRunner

    st = rm.load_sentence_transformer()
    root = tmp_path_factory.mktemp("minilm-litert")
    tokens = rm.tokenize(st, SENTENCES)
    np.savez(root / "sentences.npz", **{k: v.numpy() for k, v in tokens.items()})
    res = edgec.build(edgec.BuildConfig(factory="real_models:minilm", variants=("fp32",), out=str(root / "out"),
                                        cache_dir=str(root / "cache"), route=("torch", "tflite"), target="rpi4",
                                        validation_data=str(root / "sentences.npz"), bench=False))
    m = res.manifest
    assert m["route"] == ["torch_module", "tflite"] and m["parity"]["ok"]
    runner = TFLiteRunner(res.out / "model_fp32.tflite", [TensorSpec.from_dict(d) for d in m["inputs"]],
                          [TensorSpec.from_dict(d) for d in m["outputs"]])
    got = np.concatenate([runner.infer({k: v[i:i + 1].numpy() for k, v in tokens.items()})[0]
                          for i in range(len(SENTENCES))])
    want = st.encode(SENTENCES, convert_to_numpy=True)
    cosines = np.sum(got * want, 1) / (np.linalg.norm(got, axis=1) * np.linalg.norm(want, axis=1))
    print(f"\nminilm litert-torch fp32 vs sentence-transformers: max abs {np.abs(got - want).max():.3g}, "
          f"min cosine {cosines.min():.7f}")
    assert float(np.abs(got - want).max()) <= MAX_ABS
    assert cosines.min() >= MIN_COSINE
