"""Write the official TFLite metadata (``metadata_schema.fbs``, identifier ``M001``) into a model.

What MediaPipe's ``MetadataPopulator`` does, without mediapipe, TensorFlow or tflite-support:
the ``ModelMetadata`` table goes into a model buffer named by a ``TFLITE_METADATA`` entry of the
model's ``metadata`` list, and the associated files (labels, score calibration) are appended to the
flatbuffer as an uncompressed zip (Android's metadata extractor reads only stored entries). Entries
carry a fixed timestamp, so the same inputs give the same bytes.
"""

from __future__ import annotations

import io
import zipfile

import numpy as np

from edgec.errors import UsageError
from edgec.formats import tflite_graph as g
from edgec.formats.metadata._schema import fb
from edgec.formats.metadata.spec import AssociatedFile, ModelMeta, TensorMeta

METADATA_NAME = "TFLITE_METADATA"
METADATA_IDENTIFIER = b"M001"
ZIP_DATE = (1980, 1, 1, 0, 0, 0)

# metadata_schema.fbs history: the first schema version that has each feature edgec may write.
_FEATURE_VERSIONS = {"VOCABULARY": (1, 0, 1), "SCANN_INDEX_FILE": (1, 4, 0)}


def min_parser_version(meta: ModelMeta) -> str:
    v = (1, 0, 0)
    for f in meta.all_files():
        v = max(v, _FEATURE_VERSIONS.get(f.type, v))
    return ".".join(map(str, v))


def metadata_buffer(meta: ModelMeta) -> bytes:
    """The ``ModelMetadata`` flatbuffer for ``meta``."""
    import flatbuffers

    m = fb.ModelMetadataT()
    m.name, m.description, m.version = meta.name, _opt(meta.description), _opt(meta.version)
    m.author, m.license = _opt(meta.author), _opt(meta.license)
    m.minParserVersion = min_parser_version(meta)
    sg = fb.SubGraphMetadataT()
    sg.name, sg.description = _opt(meta.subgraph_name), _opt(meta.subgraph_description)
    sg.inputTensorMetadata = [_tensor(t) for t in meta.inputs]
    sg.outputTensorMetadata = [_tensor(t) for t in meta.outputs]
    m.subgraphMetadata = [sg]
    m.associatedFiles = [_file(f) for f in meta.files] or None
    b = flatbuffers.Builder(1024)
    b.Finish(m.Pack(b), METADATA_IDENTIFIER)
    return bytes(b.Output())


def _opt(s: str | None) -> str | None:
    return s if s else None


def _file(f: AssociatedFile):
    x = fb.AssociatedFileT()
    x.name, x.description, x.locale = f.name, _opt(f.description), _opt(f.locale)
    x.type = getattr(fb.AssociatedFileType, f.type)
    return x


def _content(t: TensorMeta):
    c = fb.ContentT()
    if t.content == "image":
        p = fb.ImagePropertiesT()
        p.colorSpace = getattr(fb.ColorSpaceType, t.color_space or "UNKNOWN")
        if t.image_size:
            p.defaultSize = fb.ImageSizeT()
            p.defaultSize.width, p.defaultSize.height = (int(v) for v in t.image_size)
        c.contentPropertiesType, c.contentProperties = fb.ContentProperties.ImageProperties, p
    else:
        c.contentPropertiesType = fb.ContentProperties.FeatureProperties
        c.contentProperties = fb.FeaturePropertiesT()
    return c


def _tensor(t: TensorMeta):
    x = fb.TensorMetadataT()
    x.name, x.description = t.name, _opt(t.description)
    x.dimensionNames = list(t.dimension_names) or None
    if t.content != "none":
        x.content = _content(t)
    units = []
    if t.normalization is not None:
        u = fb.ProcessUnitT()
        u.optionsType, u.options = fb.ProcessUnitOptions.NormalizationOptions, fb.NormalizationOptionsT()
        u.options.mean = [float(v) for v in t.normalization.mean]
        u.options.std = [float(v) for v in t.normalization.std]
        units.append(u)
    if t.score_calibration is not None:
        u = fb.ProcessUnitT()
        u.optionsType, u.options = fb.ProcessUnitOptions.ScoreCalibrationOptions, fb.ScoreCalibrationOptionsT()
        u.options.scoreTransformation = getattr(fb.ScoreTransformationType, t.score_calibration.transformation)
        u.options.defaultScore = float(t.score_calibration.default_score)
        units.append(u)
    x.processUnits = units or None
    if t.value_range is not None:
        x.stats = fb.StatsT()
        x.stats.min = [float(v) for v in t.value_range[0]]
        x.stats.max = [float(v) for v in t.value_range[1]]
    x.associatedFiles = [_file(f) for f in t.files] or None
    return x


def set_metadata(model, meta: ModelMeta) -> None:
    """Put ``meta`` into ``model`` (a ``ModelT``), replacing any earlier TFLITE_METADATA."""
    s = g.schema()
    sg = model.subgraphs[0]
    for kind, tensors, have in (("inputs", meta.inputs, sg.inputs), ("outputs", meta.outputs, sg.outputs)):
        if len(tensors) != len(have):
            raise UsageError(f"metadata describes {len(tensors)} {kind} but the model has {len(have)}",
                             where=f"metadata.{kind}")
    data = np.frombuffer(metadata_buffer(meta), dtype=np.uint8)
    model.metadata = model.metadata or []
    for entry in model.metadata:
        name = entry.name.decode() if isinstance(entry.name, bytes) else entry.name
        if name == METADATA_NAME:
            model.buffers[entry.buffer] = s.BufferT()
            model.buffers[entry.buffer].data = data
            return
    entry = s.MetadataT()
    entry.name, entry.buffer = METADATA_NAME, g.add_buffer(model, data)
    model.metadata.append(entry)


def append_files(flatbuffer: bytes, files: dict[str, bytes]) -> bytes:
    """The flatbuffer followed by a zip of ``files`` (stored, fixed timestamps, sorted by name)."""
    if not files:
        return flatbuffer
    bio = io.BytesIO(flatbuffer)
    bio.seek(0, io.SEEK_END)
    with zipfile.ZipFile(bio, "a") as zf:
        for name in sorted(files):
            info = zipfile.ZipInfo(name, date_time=ZIP_DATE)
            info.compress_type = zipfile.ZIP_STORED
            info.external_attr = 0o644 << 16
            zf.writestr(info, files[name])
    return bio.getvalue()


def write_model(model, meta: ModelMeta, files: dict[str, bytes]) -> bytes:
    """Serialize ``model`` (a ``ModelT``) with ``meta`` and its associated ``files`` embedded.
    Every file the metadata names must be given, and nothing else."""
    named = [f.name for f in meta.all_files()]
    missing = sorted(set(named) - set(files))
    extra = sorted(set(files) - set(named))
    dupes = sorted({n for n in named if named.count(n) > 1})
    if missing or extra or dupes:
        raise UsageError("associated files do not match the metadata: "
                         + "; ".join(x for x in (f"missing {missing}" if missing else "",
                                                 f"not named in the metadata {extra}" if extra else "",
                                                 f"named twice {dupes}" if dupes else "") if x),
                         where="metadata.files")
    set_metadata(model, meta)
    return append_files(g.pack(model), files)


def embed(model_bytes: bytes, meta: ModelMeta, files: dict[str, bytes], where: str = "model") -> bytes:
    """``model_bytes`` with ``meta`` and ``files`` embedded (earlier metadata and files replaced)."""
    return write_model(g.unpack(model_bytes, where), meta, files)
