"""Deciding what each bundle model becomes, before anything is written: the task, which inputs are
images, the normalization the source expects and whether it is folded into the model, the input
dtype, the labels, and the metadata. Every refusal happens here, with the field named."""

from __future__ import annotations

from dataclasses import dataclass, field
from pathlib import Path

from edgec.errors import InputError, UsageError
from edgec.formats.metadata.spec import ModelMeta
from edgec.bundle.options import BundleOptions

IMAGENET_MEAN = (0.485, 0.456, 0.406)   # the build's default for 3-channel images (edgec.data.datasets)
IMAGENET_STD = (0.229, 0.224, 0.225)
LABELS_FILE = "labels.txt"
CALIBRATION_FILE = "score_calibration.txt"
INTEGER_TYPES = ("int8", "uint8", "int16")


@dataclass(frozen=True)
class SourceNormalization:
    """What the source model expects of an image: ``(pixel / 255 - mean) / std`` per channel."""

    mean: tuple[float, ...] | None
    std: tuple[float, ...] | None
    origin: str                      # flags | build config | default

    def per_channel(self, channels: int, name: str) -> tuple[tuple[float, ...], tuple[float, ...]]:
        """(mean, std) in 0..255 pixel units for a ``channels``-channel input; refuses a count that
        is neither 1 nor ``channels``."""
        default = (IMAGENET_MEAN, IMAGENET_STD) if channels == 3 else ((0.0,), (1.0,))
        out = []
        for key, vals, dflt in (("mean", self.mean, default[0]), ("std", self.std, default[1])):
            vals = tuple(vals) if vals is not None else dflt
            if len(vals) not in (1, channels):
                raise UsageError(f"{key} has {len(vals)} value(s) but image input '{name}' has {channels} "
                                 f"channels", where=f"normalization.{key}",
                                 hint=f"give one value per channel ({channels}) or one for all")
            if key == "std" and any(float(v) == 0.0 for v in vals):
                raise UsageError(f"std values must be non-zero, got {list(vals)}", where="normalization.std")
            out.append(tuple(float(v) * 255.0 for v in (vals * channels if len(vals) == 1 else vals)))
        return out[0], out[1]


@dataclass
class TensorPlan:
    pos: int                         # position among the subgraph's inputs/outputs
    source: str                      # the source model's name for it
    sig_name: str                    # the TFLite signature's name
    shape: tuple
    dtype: str
    image: bool = False
    channels: int | None = None
    layout: str | None = None        # NHWC or NCHW for images (the manifest's word)
    fold: str | None = None          # None, or the new input dtype: float32 | uint8
    mean: tuple[float, ...] | None = None   # 0..255 units, per channel (image inputs)
    std: tuple[float, ...] | None = None

    @property
    def channel_axis(self) -> int:
        return 1 if self.layout == "NCHW" else -1

    def per_channel(self, values):
        """``values`` (one per channel) as an array shaped to broadcast over this tensor."""
        import numpy as np

        v = np.asarray(values, dtype=np.float64)
        return v.reshape(-1, 1, 1) if self.layout == "NCHW" else v


@dataclass
class ModelPlan:
    variant: str
    parent: Path
    file: str
    task: str
    inputs: list[TensorPlan]
    outputs: list[TensorPlan]
    dequantize_outputs: bool
    meta: ModelMeta | None = None       # the TFLite metadata (edgec.bundle.describe), set by the bundle maker
    files: dict[str, bytes] = field(default_factory=dict)
    classes: int | None = None          # the classifier's class count, where it is one


def is_image(shape, layout: str | None) -> tuple[bool, int | None]:
    """(image?, channels) for a TFLite tensor: rank 4 with 1, 3 or 4 channels where its layout says."""
    if len(shape) != 4:
        return False, None
    ch = shape[1] if layout == "NCHW" else shape[3]
    return (ch in (1, 3, 4)), (ch if ch in (1, 3, 4) else None)


def read_labels(path: str, classes: int | None, output: str) -> bytes:
    text = _read_text(path, "labels")
    lines = text.splitlines()
    if classes is not None and len(lines) != classes:
        raise UsageError(f"labels file has {len(lines)} lines but output '{output}' has {classes} classes",
                         where=f"labels ({path})", hint="one class name per line, in class-index order")
    return ("\n".join(lines) + "\n").encode()


def read_calibration(path: str, classes: int | None, output: str) -> bytes:
    """One ``scale,slope,offset[,min_score]`` line per class (empty: the default score), scale >= 0.
    Written without a final newline: MediaPipe reads every newline-separated piece as a class."""
    lines = _read_text(path, "score_calibration").splitlines()
    if classes is not None and len(lines) != classes:
        raise UsageError(f"score calibration file has {len(lines)} lines but output '{output}' has {classes} "
                         "classes", where=f"score_calibration ({path})")
    for i, line in enumerate(lines, 1):
        try:
            values = [float(p) for p in line.split(",")] if line.strip() else []
        except ValueError:
            values = None
        if values is None or len(values) not in (0, 3, 4) or (values and values[0] < 0):
            raise UsageError(f"line {i} is not 'scale,slope,offset[,min_score]' with scale >= 0 (or empty)",
                             where=f"score_calibration ({path})")
    return "\n".join(line.strip() for line in lines).encode()


def _read_text(path: str, field_name: str) -> str:
    p = Path(path)
    try:
        return p.read_bytes().decode("utf-8-sig")  # a BOM is not part of the first label
    except FileNotFoundError:
        raise UsageError("file not found", where=f"{field_name} ({path})") from None
    except (OSError, UnicodeDecodeError) as exc:
        raise UsageError(f"cannot read it as UTF-8 text ({exc})", where=f"{field_name} ({path})") from None


def resolve_task(opts: BundleOptions, images: list[TensorPlan], n_inputs: int, outputs: list[TensorPlan],
                 layouts: dict | None = None, channel_order: str = "rgb") -> str:
    """auto: an image classifier when labels are given for a model with an image input (then it must
    fit MediaPipe, or it is refused), or when the model plainly is one: one NHWC RGB input and one
    [1, N] output. Anything else gets generic metadata, so a default bundle never refuses a build."""
    if opts.task != "auto":
        return opts.task
    if images and opts.labels:
        return "image_classifier"
    one_vector = len(outputs) == 1 and len(outputs[0].shape) == 2 and (outputs[0].shape[-1] or 0) > 1
    plain = (n_inputs == 1 and len(images) == 1 and images[0].channels == 3 and channel_order == "rgb"
             and (layouts or {}).get(images[0].source) != "NCHW")
    return "image_classifier" if plain and one_vector else "generic"


def check_classifier(inputs: list[TensorPlan], layouts: dict, channel_order: str) -> None:
    """MediaPipe's ImageClassifier: one NHWC RGB input; class scores out."""
    images = [t for t in inputs if t.image]
    if len(inputs) != 1 or len(images) != 1:
        names = ", ".join(f"'{t.source}'" for t in images) or "none"
        raise UsageError(f"an image classifier takes exactly one input, an image; the model has {len(inputs)} "
                         f"input(s), {len(images)} of them image(s) ({names})", where="inputs",
                         hint="pass --task generic for generic metadata")
    t = images[0]
    if layouts.get(t.source) == "NCHW":
        raise UsageError(f"image input '{t.source}' is NCHW; MediaPipe and Android take NHWC",
                         where="layout", hint="rebuild without --keep-layout")
    if t.channels != 3:
        raise UsageError(f"image input '{t.source}' has {t.channels} channels; the ImageClassifier takes RGB (3)",
                         where="inputs", hint="pass --task generic")
    if channel_order != "rgb":
        raise UsageError(f"the source model expects {channel_order.upper()} channels; MediaPipe gives RGB and "
                         "edgec does not fold a channel swap", where="channel_order", hint="pass --task generic")


def class_count(outputs: list[TensorPlan], opts: BundleOptions, task: str) -> tuple[TensorPlan | None, int | None]:
    """The class-score output the labels (and calibration) describe, and its class count."""
    if not (opts.labels or opts.score_calibration or task == "image_classifier"):
        return None, None
    if len(outputs) != 1:
        raise UsageError(f"labels go with one class-score output; the model has {len(outputs)} outputs "
                         f"({', '.join(t.source for t in outputs)})", where="labels")
    out = outputs[0]
    if not out.shape or out.shape[-1] is None:
        raise UsageError(f"output '{out.source}' has no static class dimension", where="labels")
    return out, int(out.shape[-1])


FULL_INTEGER_VARIANTS = ("int8",)


def _tensors(info, rows: list[dict], kind: str, path: Path) -> list[TensorPlan]:
    """The manifest's I/O rows in the order of the model's subgraph (the order metadata follows)."""
    specs = info.inputs if kind == "inputs" else info.outputs
    pos = {s.name: i for i, s in enumerate(specs)}
    sig = (info.signatures.get("serving_default") or {}).get(kind, {})
    plans: list[TensorPlan | None] = [None] * len(specs)
    for row in rows:
        tensor = sig.get(row["name"]) or row.get("tensor") or row["name"]
        if tensor not in pos:
            raise InputError(f"{kind[:-1]} '{row['source']}' (tensor '{tensor}') is not in the model",
                             where=str(path), hint="the build's manifest does not match this file; rebuild")
        i = pos[tensor]
        image, ch = is_image(specs[i].shape, row.get("layout")) if kind == "inputs" else (False, None)
        plans[i] = TensorPlan(i, row["source"], row["name"], tuple(specs[i].shape), specs[i].dtype, image, ch,
                              ("NCHW" if row.get("layout") == "NCHW" else "NHWC") if image else None)
    if any(p is None for p in plans):
        raise InputError(f"the manifest names {len(rows)} {kind} but the model has {len(specs)}", where=str(path))
    return plans


def _fold(t: TensorPlan, variant: str, opts: BundleOptions) -> str | None:
    """The new dtype of an image input (pixels in), or None to leave the input as it is."""
    want = opts.image_input
    if want == "auto":
        want = "uint8" if variant in FULL_INTEGER_VARIANTS or t.dtype in INTEGER_TYPES else "float32"
    per_channel = len(set(t.mean)) > 1 or len(set(t.std)) > 1
    if want == "uint8" or t.dtype in INTEGER_TYPES or per_channel:
        return want
    return None


def plan_models(manifest: dict, models: dict[str, Path], opts: BundleOptions,
                norm: SourceNormalization) -> list[ModelPlan]:
    """One plan per variant; refuses (naming the field) before anything is written."""
    from edgec.formats.tflite import read_tflite

    io = manifest["tflite_io"]
    layouts = {r["source"]: r.get("layout") for r in io["inputs"]}
    channel_order = (manifest.get("config") or {}).get("channel_order") or "rgb"
    texts: dict[str, bytes] = {}
    plans = []
    for variant, path in models.items():
        info = read_tflite(path)
        inputs, outputs = _tensors(info, io["inputs"], "inputs", path), _tensors(info, io["outputs"], "outputs", path)
        images = [t for t in inputs if t.image]
        task = resolve_task(opts, images, len(inputs), outputs, layouts, channel_order)
        if task == "image_classifier":
            check_classifier(inputs, layouts, channel_order)
        for t in images:
            t.mean, t.std = norm.per_channel(t.channels, t.source)
            t.fold = _fold(t, variant, opts)
        out, classes = class_count(outputs, opts, task)
        if opts.labels and LABELS_FILE not in texts:
            texts[LABELS_FILE] = read_labels(opts.labels, classes, out.source)
        if opts.score_calibration and CALIBRATION_FILE not in texts:
            texts[CALIBRATION_FILE] = read_calibration(opts.score_calibration, classes, out.source)
        plan = ModelPlan(variant, Path(path), f"model_{variant}.tflite", task, inputs, outputs,
                         dequantize_outputs=task == "image_classifier")
        plan.files, plan.classes = dict(texts), classes
        plans.append(plan)
    return plans
