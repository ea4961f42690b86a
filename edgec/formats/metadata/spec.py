"""The TFLite metadata edgec writes and reads, as plain frozen dataclasses.

One structure for both directions: the writer packs a ``ModelMeta`` into the official metadata
flatbuffer (schema ``metadata_schema.fbs``, identifier ``M001``) and the reader turns any .tflite's
metadata back into a ``ModelMeta``; ``to_dict`` is what ``edgec inspect`` and the bundle manifest show.
Only the parts of the schema edgec writes are modelled; the reader reports what it did not model
under ``ModelMeta.unmodelled``.
"""

from __future__ import annotations

from dataclasses import dataclass, field, fields
from typing import Any

FILE_TYPES = ("UNKNOWN", "DESCRIPTIONS", "TENSOR_AXIS_LABELS", "TENSOR_VALUE_LABELS",
              "TENSOR_AXIS_SCORE_CALIBRATION", "VOCABULARY", "SCANN_INDEX_FILE")
COLOR_SPACES = ("UNKNOWN", "RGB", "GRAYSCALE")
CONTENTS = ("feature", "image", "none")
SCORE_TRANSFORMS = ("IDENTITY", "LOG", "INVERSE_LOGISTIC")


@dataclass(frozen=True)
class AssociatedFile:
    name: str
    type: str = "UNKNOWN"
    description: str = ""
    locale: str = ""


@dataclass(frozen=True)
class Normalization:
    """``(value - mean) / std`` per channel, in the units the input receives (0..255 for pixels)."""

    mean: tuple[float, ...]
    std: tuple[float, ...]


@dataclass(frozen=True)
class ScoreCalibration:
    """Sigmoid calibration of scores; the per-class parameters live in a
    TENSOR_AXIS_SCORE_CALIBRATION associated file of the same tensor."""

    transformation: str = "IDENTITY"
    default_score: float = 0.0


@dataclass(frozen=True)
class TensorMeta:
    name: str
    description: str = ""
    content: str = "feature"                     # feature | image | none
    color_space: str | None = None               # image only: RGB | GRAYSCALE | UNKNOWN
    image_size: tuple[int, int] | None = None    # image only: (width, height)
    normalization: Normalization | None = None
    value_range: tuple[tuple[float, ...], tuple[float, ...]] | None = None   # Stats (min, max)
    dimension_names: tuple[str, ...] = ()
    files: tuple[AssociatedFile, ...] = ()
    score_calibration: ScoreCalibration | None = None


@dataclass(frozen=True)
class ModelMeta:
    name: str
    description: str = ""
    version: str = ""
    author: str = ""
    license: str = ""
    subgraph_name: str = ""
    subgraph_description: str = ""
    inputs: tuple[TensorMeta, ...] = ()
    outputs: tuple[TensorMeta, ...] = ()
    files: tuple[AssociatedFile, ...] = ()       # model-level associated files
    min_parser_version: str = ""                 # set by the writer from the features used
    unmodelled: tuple[str, ...] = field(default=(), compare=False)

    def all_files(self) -> list[AssociatedFile]:
        out = list(self.files)
        for t in self.inputs + self.outputs:
            out.extend(t.files)
        return out

    def to_dict(self) -> dict[str, Any]:
        return _to_dict(self)

    @classmethod
    def from_dict(cls, d: dict) -> "ModelMeta":
        d = dict(d)
        d["inputs"] = tuple(_tensor_from(x) for x in d.get("inputs", ()))
        d["outputs"] = tuple(_tensor_from(x) for x in d.get("outputs", ()))
        d["files"] = tuple(AssociatedFile(**f) for f in d.get("files", ()))
        d["unmodelled"] = tuple(d.get("unmodelled", ()))
        return cls(**d)


def _tensor_from(d: dict) -> TensorMeta:
    d = dict(d)
    if d.get("normalization"):
        d["normalization"] = Normalization(tuple(d["normalization"]["mean"]), tuple(d["normalization"]["std"]))
    if d.get("score_calibration"):
        d["score_calibration"] = ScoreCalibration(**d["score_calibration"])
    if d.get("value_range"):
        d["value_range"] = tuple(tuple(v) for v in d["value_range"])
    if d.get("image_size"):
        d["image_size"] = tuple(d["image_size"])
    d["dimension_names"] = tuple(d.get("dimension_names", ()))
    d["files"] = tuple(AssociatedFile(**f) for f in d.get("files", ()))
    return TensorMeta(**d)


def _to_dict(obj) -> Any:
    if hasattr(obj, "__dataclass_fields__"):
        return {f.name: _to_dict(getattr(obj, f.name)) for f in fields(obj)}
    if isinstance(obj, tuple):
        return [_to_dict(x) for x in obj]
    return obj
