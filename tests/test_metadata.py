"""edgec's TFLite metadata writer, read back by parsers that share no code with it: mediapipe's own copy
of the schema's generated reader (accessor API), its C++ flatbuffers parser (JSON), its C++ minimum
parser version, and the zip reader. Every field edgec writes is checked."""

from __future__ import annotations

import importlib.util
import json
from dataclasses import replace

import numpy as np
import pytest

from edgec.errors import UsageError
from edgec.formats.metadata import AssociatedFile, ModelMeta, Normalization, ScoreCalibration, TensorMeta, embed, read_metadata

HAVE_MEDIAPIPE = importlib.util.find_spec("mediapipe") is not None

FILES = {"labels.txt": b"cat\ndog\nbird\n", "calibration.txt": b"1.0,0.5,0.1\n\n0.9,1.5,-0.2,0.05\n",
         "vocab.txt": b"f0\nf1\nf2\nf3\nf4\nf5\n", "README.txt": "how to use it \u2713\n".encode()}


def _meta(image_first: bool) -> ModelMeta:
    image = TensorMeta(name="image", description="RGB image 16x16, pixels / 255", content="image", color_space="RGB",
                       image_size=(16, 16), normalization=Normalization((0.0,), (255.0,)),
                       value_range=((0.0,), (1.0,)), dimension_names=("batch", "height", "width", "channels"))
    features = TensorMeta(name="features", description="six features", content="feature",
                          dimension_names=("batch", "features"),
                          files=(AssociatedFile("vocab.txt", "VOCABULARY", "feature names", "en"),))
    scores = TensorMeta(name="scores", description="three class scores", content="feature",
                        value_range=((-20.0, -21.5, -22.0), (20.0, 21.5, 22.0)),
                        files=(AssociatedFile("labels.txt", "TENSOR_AXIS_LABELS", "class names", "en"),
                               AssociatedFile("calibration.txt", "TENSOR_AXIS_SCORE_CALIBRATION", "sigmoid params")),
                        score_calibration=ScoreCalibration("LOG", 0.25))
    embedding = TensorMeta(name="embedding", content="none", normalization=Normalization((0.5, 1.5), (2.0, 4.0)))
    return ModelMeta(name="two-input test model", description="a model with every metadata field edgec writes",
                     version="3.1", author="edgec tests", license="MIT", subgraph_name="main graph",
                     subgraph_description="fp32 variant", inputs=(image, features) if image_first else (features, image),
                     outputs=(scores, embedding),
                     files=(AssociatedFile("README.txt", "DESCRIPTIONS", "how to use the model"),))


@pytest.fixture(scope="module")
def two_input_tflite(models, cache_dir, tmp_path_factory):
    from edgec.cli.main import main

    out = tmp_path_factory.mktemp("meta") / "b"
    assert main(["build", str(models / "two_input.pt"), "-o", str(out), "-q", "--variants", "fp32", "--no-bench",
                 "--no-bundle", "--synthetic-validation", "--cache-dir", str(cache_dir)]) == 0
    path = out / "model_fp32.tflite"
    from edgec.formats.tflite import read_tflite

    image_first = len(read_tflite(path).inputs[0].shape) == 4
    return path, _meta(image_first)


@pytest.fixture(scope="module")
def written(two_input_tflite, tmp_path_factory):
    path, meta = two_input_tflite
    out = tmp_path_factory.mktemp("meta-out") / "with_metadata.tflite"
    out.write_bytes(embed(path.read_bytes(), meta, FILES))
    return path, out, meta


def _independent(raw: bytes) -> dict:
    """The metadata as plain data, through mediapipe's generated reader (accessor API only)."""
    from mediapipe.tasks.metadata import metadata_schema_py_generated as mfb

    names = {cls: {v: k for k, v in vars(getattr(mfb, cls)).items() if not k.startswith("_")}
             for cls in ("AssociatedFileType", "ColorSpaceType", "ContentProperties", "ProcessUnitOptions",
                         "ScoreTransformationType")}
    s = lambda b: b.decode() if b else ""  # noqa: E731

    def files(owner) -> list:
        return [{"name": s(f.Name()), "type": names["AssociatedFileType"][f.Type()], "description": s(f.Description()),
                 "locale": s(f.Locale())} for f in (owner.AssociatedFiles(i) for i in range(owner.AssociatedFilesLength()))]

    def tensor(t) -> dict:
        d = {"name": s(t.Name()), "description": s(t.Description()), "content": "none", "color_space": None,
             "image_size": None, "normalization": None, "value_range": None, "score_calibration": None,
             "dimension_names": [s(t.DimensionNames(i)) for i in range(t.DimensionNamesLength())], "files": files(t)}
        c = t.Content()
        if c is not None:
            kind = names["ContentProperties"][c.ContentPropertiesType()]
            d["content"] = {"ImageProperties": "image", "FeatureProperties": "feature"}[kind]
            if kind == "ImageProperties":
                p = mfb.ImageProperties()
                p.Init(c.ContentProperties().Bytes, c.ContentProperties().Pos)
                d["color_space"] = names["ColorSpaceType"][p.ColorSpace()]
                d["image_size"] = [p.DefaultSize().Width(), p.DefaultSize().Height()]
        for i in range(t.ProcessUnitsLength()):
            u = t.ProcessUnits(i)
            kind = names["ProcessUnitOptions"][u.OptionsType()]
            o = getattr(mfb, kind)()
            o.Init(u.Options().Bytes, u.Options().Pos)
            if kind == "NormalizationOptions":
                d["normalization"] = {"mean": o.MeanAsNumpy().tolist(), "std": o.StdAsNumpy().tolist()}
            else:
                d["score_calibration"] = {"transformation": names["ScoreTransformationType"][o.ScoreTransformation()],
                                          "default_score": o.DefaultScore()}
        if t.Stats() is not None:
            d["value_range"] = [t.Stats().MinAsNumpy().tolist(), t.Stats().MaxAsNumpy().tolist()]
        return d

    m = mfb.ModelMetadata.GetRootAs(raw, 0)
    assert mfb.ModelMetadata.ModelMetadataBufferHasIdentifier(raw, 0)
    assert m.SubgraphMetadataLength() == 1
    sg = m.SubgraphMetadata(0)
    return {"name": s(m.Name()), "description": s(m.Description()), "version": s(m.Version()),
            "author": s(m.Author()), "license": s(m.License()), "subgraph_name": s(sg.Name()),
            "subgraph_description": s(sg.Description()),
            "inputs": [tensor(sg.InputTensorMetadata(i)) for i in range(sg.InputTensorMetadataLength())],
            "outputs": [tensor(sg.OutputTensorMetadata(i)) for i in range(sg.OutputTensorMetadataLength())],
            "files": files(m), "min_parser_version": s(m.MinParserVersion())}


@pytest.mark.skipif(not HAVE_MEDIAPIPE, reason="mediapipe (the independent reader) is not installed")
def test_every_field_reads_back_with_mediapipes_reader(written):
    from mediapipe.tasks.cc.metadata.python import _pywrap_metadata_version
    from mediapipe.tasks.python.metadata import metadata as mp_metadata

    _, out, meta = written
    displayer = mp_metadata.MetadataDisplayer.with_model_file(str(out))
    raw = displayer.get_metadata_buffer()
    expected = json.loads(json.dumps(meta.to_dict()))           # tuples -> lists
    expected["min_parser_version"] = "1.0.1"                   # a VOCABULARY file needs parser 1.0.1
    expected.pop("unmodelled")
    assert _independent(raw) == expected
    assert _pywrap_metadata_version.GetMinimumMetadataParserVersion(raw) == "1.0.1"
    assert sorted(displayer.get_packed_associated_file_list()) == sorted(FILES)
    for name, data in FILES.items():
        assert displayer.get_associated_file_buffer(name) == data
    doc = json.loads(displayer.get_metadata_json())             # mediapipe's C++ flatbuffers parser
    sg = doc["subgraph_metadata"][0]
    assert (doc["name"], doc["author"], doc["license"], doc["version"]) == (meta.name, "edgec tests", "MIT", "3.1")
    image = next(t for t in sg["input_tensor_metadata"] if t["name"] == "image")
    assert image["content"]["content_properties"] == {"color_space": "RGB", "default_size": {"width": 16, "height": 16}}
    assert image["process_units"][0]["options"] == {"mean": [0.0], "std": [255.0]}
    scores = sg["output_tensor_metadata"][0]
    assert scores["process_units"][0]["options"] == {"score_transformation": "LOG", "default_score": 0.25}
    assert [f["type"] for f in scores["associated_files"]] == ["TENSOR_AXIS_LABELS", "TENSOR_AXIS_SCORE_CALIBRATION"]


def test_edgecs_reader_round_trips_and_the_model_still_runs_the_same(written):
    from ai_edge_litert import interpreter as lite

    path, out, meta = written
    got, files = read_metadata(out)
    assert got == replace(meta, min_parser_version="1.0.1") and files == FILES
    assert read_metadata(path) == (None, {})
    outs = []
    for p in (path, out):
        runner = lite.Interpreter(model_path=str(p)).get_signature_runner("serving_default")
        rng = np.random.default_rng(0)
        feed = {k: rng.standard_normal(v["shape"]).astype(np.float32) for k, v in runner.get_input_details().items()}
        outs.append(runner(**feed))
    assert all(np.array_equal(outs[0][k], outs[1][k]) for k in outs[0])  # bit-identical


def test_buffers_stay_16_byte_aligned_and_rewriting_replaces(written):
    from ai_edge_litert import schema_py_generated as s

    _, out, meta = written
    data = out.read_bytes()
    model = s.Model.GetRootAs(data, 0)
    starts = []
    for i in range(model.BuffersLength()):
        b = model.Buffers(i)
        if b.DataLength():
            starts.append(b._tab.Vector(b._tab.Offset(4)))
    assert starts and all(p % 16 == 0 for p in starts)
    again = embed(data, replace(meta, name="renamed"), FILES)
    names = [s.Model.GetRootAs(again, 0).Metadata(i).Name() for i in range(s.Model.GetRootAs(again, 0).MetadataLength())]
    assert names.count(b"TFLITE_METADATA") == 1
    assert read_metadata(again)[0].name == "renamed" and read_metadata(again)[1] == FILES


def test_refusals_name_the_field(written):
    path, _, meta = written
    data = path.read_bytes()
    with pytest.raises(UsageError, match="missing.*labels.txt") as e:
        embed(data, meta, {k: v for k, v in FILES.items() if k != "labels.txt"})
    assert e.value.where == "metadata.files"
    with pytest.raises(UsageError, match="describes 1 inputs but the model has 2") as e:
        embed(data, replace(meta, inputs=meta.inputs[:1]), FILES)
    assert e.value.where == "metadata.inputs"
