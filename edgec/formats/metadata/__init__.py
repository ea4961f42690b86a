"""Official TFLite metadata (``metadata_schema.fbs``), written and read without tflite-support.

    from edgec.formats.metadata import ModelMeta, TensorMeta, embed, read_metadata

``embed(model_bytes, meta, files)`` returns the model with the metadata and its associated files
(labels, score calibration) inside; ``read_metadata(path)`` turns any .tflite's metadata back into
the same ``ModelMeta`` structure. Only ``flatbuffers`` and the TFLite schema reader are needed.
"""

from edgec.formats.metadata.spec import AssociatedFile, ModelMeta, Normalization, ScoreCalibration, TensorMeta


def embed(model_bytes: bytes, meta: ModelMeta, files: dict[str, bytes], where: str = "model") -> bytes:
    from edgec.formats.metadata.writer import embed as _embed

    return _embed(model_bytes, meta, files, where)


def read_metadata(path_or_bytes):
    from edgec.formats.metadata.reader import read_metadata as _read

    return _read(path_or_bytes)


__all__ = ["AssociatedFile", "ModelMeta", "Normalization", "ScoreCalibration", "TensorMeta", "embed",
           "read_metadata"]
