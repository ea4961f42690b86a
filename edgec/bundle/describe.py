"""The TFLite metadata of one bundle model, from its plan: names, descriptions, image properties,
normalization, value ranges, labels and score calibration. Values are rounded to float32 first, so
what is written is exactly what any reader gets back."""

from __future__ import annotations

from dataclasses import replace
from pathlib import Path

import numpy as np

from edgec.environment import __version__
from edgec.formats.metadata.spec import AssociatedFile, ModelMeta, Normalization, ScoreCalibration, TensorMeta
from edgec.formats.metadata.writer import min_parser_version
from edgec.bundle.options import BundleOptions
from edgec.bundle.plan import CALIBRATION_FILE, LABELS_FILE, ModelPlan, SourceNormalization, TensorPlan

TASK_WORDS = {"image_classifier": "image classifier", "generic": "model"}


def f32(values) -> tuple[float, ...]:
    return tuple(float(np.float32(v)) for v in values)


def default_name(manifest: dict) -> str:
    src = manifest.get("source") or {}
    if src.get("factory"):
        return src["factory"].rsplit(":", 1)[-1]
    return Path(src.get("path") or "model").stem


def final_dtype(t: TensorPlan, plan: ModelPlan, kind: str) -> str:
    if kind == "inputs":
        return t.fold or t.dtype
    if plan.dequantize_outputs and t.dtype in ("int8", "int16"):
        return "float32"
    return t.dtype


def _nums(values) -> str:
    return "[" + ", ".join(f"{v:.6g}" for v in values) + "]"


def _shape(shape) -> str:
    return "x".join("?" if d is None else str(d) for d in shape)


def image_expectation(t: TensorPlan) -> tuple[Normalization, tuple, str]:
    """(metadata normalization, value range, words) for an image input after the bundle's pass."""
    if t.fold == "uint8":
        return Normalization((0.0,), (255.0,)), ((0.0,), (255.0,)), "pixels 0..255 as uint8"
    if t.fold == "float32":
        return Normalization((0.0,), (255.0,)), ((0.0,), (1.0,)), "pixels / 255 as float32 in [0, 1]"
    m, s = f32(t.mean[:1]), f32(t.std[:1])
    lo, hi = f32([(0.0 - m[0]) / s[0]]), f32([(255.0 - m[0]) / s[0]])
    return Normalization(m, s), (lo, hi), f"(pixel - {m[0]:g}) / {s[0]:g} as {t.dtype}"


def _image_meta(t: TensorPlan, norm: SourceNormalization) -> TensorMeta:
    normalization, value_range, words = image_expectation(t)
    h, w = (t.shape[2], t.shape[3]) if t.layout == "NCHW" else (t.shape[1], t.shape[2])
    folded = (f"; the source model's normalization (mean {_nums(t.mean)}, std {_nums(t.std)} on "
              f"0..255 pixels, from the {norm.origin}) is inside the model") if t.fold else ""
    color = {3: "RGB", 1: "GRAYSCALE"}.get(t.channels, "UNKNOWN")
    dims = ("batch", "channels", "height", "width") if t.layout == "NCHW" else ("batch", "height", "width", "channels")
    return TensorMeta(name=t.source, description=f"{color} image {w}x{h}, {t.layout}: {words}{folded}.", content="image",
                      color_space=color, image_size=(int(w), int(h)), normalization=normalization,
                      value_range=value_range, dimension_names=dims)


def _output_meta(t: TensorPlan, plan: ModelPlan, opts: BundleOptions, classes: int | None) -> TensorMeta:
    dtype = final_dtype(t, plan, "outputs")
    if classes is None:
        return TensorMeta(name=t.source, description=f"{dtype} tensor {_shape(t.shape)}.", content="feature")
    files = []
    words = f"Scores for {classes} classes as the model computes them (no softmax added)"
    if LABELS_FILE in plan.files:
        files.append(AssociatedFile(LABELS_FILE, "TENSOR_AXIS_LABELS", f"{classes} class names, one per line"))
        words += f"; class names in {LABELS_FILE}"
    calibration = None
    if CALIBRATION_FILE in plan.files:
        files.append(AssociatedFile(CALIBRATION_FILE, "TENSOR_AXIS_SCORE_CALIBRATION",
                                    "per-class scale,slope,offset[,min_score]"))
        calibration = ScoreCalibration(opts.score_transformation, float(np.float32(opts.default_score)))
    return TensorMeta(name=t.source, description=f"{words}. {dtype} {_shape(t.shape)}.", content="feature",
                      dimension_names=("batch", "classes") if len(t.shape) == 2 else (),
                      files=tuple(files), score_calibration=calibration)


def describe(plan: ModelPlan, manifest: dict, opts: BundleOptions, norm: SourceNormalization,
             classes: int | None) -> ModelMeta:
    name = opts.name or default_name(manifest)
    target = (manifest.get("target") or {}).get("name", "?")
    route = " -> ".join(manifest.get("route") or [])
    inputs = tuple(_image_meta(t, norm) if t.image else
                   TensorMeta(name=t.source, description=f"{t.dtype} tensor {_shape(t.shape)}.", content="feature")
                   for t in plan.inputs)
    outputs = tuple(_output_meta(t, plan, opts, classes if i == 0 else None) for i, t in enumerate(plan.outputs))
    description = opts.description or (f"{name}: {TASK_WORDS[plan.task]} converted by edgec {__version__} "
                                       f"({route}) for {target}.")
    meta = ModelMeta(
        name=name, description=description, version=opts.version or "", author=opts.author or "",
        license=opts.license or "", subgraph_name=name,
        subgraph_description=f"{plan.variant} variant ({plan.file}); built for {target}.",
        inputs=inputs, outputs=outputs)
    return replace(meta, min_parser_version=min_parser_version(meta))
