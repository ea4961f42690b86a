"""What ``edgec serve`` serves: a finished build (``manifest.json`` + ``model_<variant>.tflite``), a
bundle (its directory or ``bundle.zip``) or a single ``.tflite``, read into one ``ServedModel``.

Every variant is served exactly as built: its tensors keep the names, shapes and datatypes of the
``.tflite`` (the signature's names where it has one). For image classifiers the model also carries
how a picture becomes each variant's input (``ImagePrep``) and the class names, so the classify
endpoint and the page can use them. Nothing here imports a runtime: the interpreters live in the
worker processes (``edgec.serve.pool``).
"""

from __future__ import annotations

import json
import re
import tempfile
import zipfile
from dataclasses import dataclass, field
from pathlib import Path

import numpy as np

from edgec.errors import InputError, UsageError
from edgec.formats import TensorSpec

IMAGENET_MEAN = (0.485, 0.456, 0.406)
IMAGENET_STD = (0.229, 0.224, 0.225)


@dataclass(frozen=True)
class ImagePrep:
    """How a picture becomes this input: fitted to ``height`` x ``width`` (``resize``: shorter side
    then center crop; else the largest centered crop), ``value = (pixel - mean) / std`` per channel on
    0..255 pixels, laid out ``nhwc`` or ``nchw``; an integer input is then quantized with its own
    scale and zero point (the worker's runner does that)."""

    input: str
    height: int
    width: int
    channels: int
    layout: str
    mean: tuple[float, ...]
    std: tuple[float, ...]
    resize: int | None = None
    channel_order: str = "rgb"
    origin: str = ""

    def to_dict(self) -> dict:
        return {"input": self.input, "height": self.height, "width": self.width, "channels": self.channels,
                "layout": self.layout, "mean": list(self.mean), "std": list(self.std), "resize": self.resize,
                "channel_order": self.channel_order, "origin": self.origin}


@dataclass
class Variant:
    """One version of the served model: one ``.tflite`` and the I/O it was built with."""

    name: str
    path: Path
    inputs: list[TensorSpec]
    outputs: list[TensorSpec]
    sig_names: dict[str, str] = field(default_factory=dict)   # tensor name -> signature name
    prep: ImagePrep | None = None
    quant: dict[str, tuple[float, int]] = field(default_factory=dict)  # filled by the worker's report


@dataclass
class ServedModel:
    name: str
    kind: str                      # build | bundle | tflite
    source: str
    variants: dict[str, Variant]
    labels: list[str] | None = None
    task: str = "generic"          # image_classifier | generic
    notes: list[str] = field(default_factory=list)
    _tmp: object = None            # keeps an extracted bundle.zip alive

    @property
    def default_variant(self) -> str:
        return "fp32" if "fp32" in self.variants else next(iter(self.variants))


def clean_name(name: str) -> str:
    """A model name usable in a URL path segment."""
    s = re.sub(r"[^A-Za-z0-9_.-]+", "-", name).strip("-.")
    return s or "model"


def load_served(path: str | Path, name: str | None = None, variants: tuple[str, ...] | None = None) -> ServedModel:
    """Read a build directory, a bundle (directory or .zip) or one .tflite. A variant the runtime
    cannot load (a custom op without a kernel) is refused when its workers load it (``edgec.serve.pool``)."""
    p = Path(path)
    if not p.exists():
        raise InputError("nothing to serve here: the path does not exist", where=str(p),
                         hint="give a build directory (with manifest.json), a bundle, or a .tflite file")
    tmp = None
    if p.is_file() and p.suffix == ".zip":
        tmp = tempfile.TemporaryDirectory(prefix="edgec-serve-")
        try:
            with zipfile.ZipFile(p) as zf:
                zf.extractall(tmp.name)
        except zipfile.BadZipFile as exc:
            raise InputError(f"not a readable zip ({exc})", where=str(p), hint="rebuild the bundle") from exc
        inner = [d for d in Path(tmp.name).rglob("manifest.json")]
        if not inner:
            raise InputError("the zip holds no manifest.json", where=str(p), hint="give an edgec bundle.zip")
        model = _from_dir(inner[0].parent, name, where=str(p))
    elif p.is_file():
        if p.suffix != ".tflite":
            raise InputError(f"cannot serve a '{p.suffix}' file", where=str(p),
                             hint="serve a .tflite, a build directory or a bundle; build other formats first")
        model = _from_tflite(p, name)
    else:
        model = _from_dir(p, name, where=str(p))
    model._tmp = tmp
    if variants:
        unknown = [v for v in variants if v not in model.variants]
        if unknown:
            raise UsageError(f"--variants names {', '.join(unknown)}, which this {model.kind} does not have "
                             f"(it has {', '.join(model.variants)})", where=str(p))
        model.variants = {v: model.variants[v] for v in variants}
    return model


def _read_json(path: Path) -> dict:
    try:
        return json.loads(path.read_text())
    except (OSError, ValueError) as exc:
        raise InputError(f"cannot read the manifest ({exc})", where=str(path), hint="rebuild the output") from exc


def _from_dir(d: Path, name: str | None, where: str) -> ServedModel:
    mf = d / "manifest.json"
    if not mf.is_file():
        tfl = sorted(d.glob("*.tflite"))
        raise InputError("no manifest.json here" + (f" (it has {len(tfl)} .tflite file(s))" if tfl else ""),
                         where=where, hint="give an edgec build directory or bundle, or one .tflite file")
    m = _read_json(mf)
    if "bundle_schema" in m:
        return _from_bundle(d, m, name)
    return _from_build(d, m, name)


def _variant(path: Path, variant: str) -> Variant:
    from edgec.formats.tflite import read_tflite

    if not path.is_file():
        raise InputError(f"variant '{variant}' is missing its model file", where=str(path),
                         hint="rebuild, or leave the variant out with --variants")
    info = read_tflite(path)
    sig = info.signatures.get("serving_default")
    names: dict[str, str] = {}
    if sig:
        names = {t: s for s, t in sig["inputs"].items()} | {t: s for s, t in sig["outputs"].items()}

    def spec(t: TensorSpec) -> TensorSpec:
        return TensorSpec(names.get(t.name, t.name), t.shape, t.dtype)

    return Variant(variant, path, [spec(t) for t in info.inputs], [spec(t) for t in info.outputs], names)


def _labels_file(path: Path | None) -> list[str] | None:
    if path is None or not path.is_file():
        return None
    return [ln.rstrip("\r") for ln in path.read_text().splitlines() if ln.strip()]


def _image_prep(spec: TensorSpec, mean255, std255, resize=None, order="rgb", origin="") -> ImagePrep | None:
    """An image input: 4-D with 1, 3 or 4 channels last (what the converted models take) or first."""
    if len(spec.shape) != 4 or any(d is None for d in spec.shape[1:]):
        return None
    _, a, b, c = spec.shape
    if c in (1, 3, 4):
        layout, ch, h, w = "nhwc", c, a, b
    elif a in (1, 3, 4):
        layout, ch, h, w = "nchw", a, b, c
    else:
        return None

    def per_channel(vals):
        vals = tuple(float(v) for v in vals)
        return vals * ch if len(vals) == 1 else vals

    mean, std = per_channel(mean255), per_channel(std255)
    if len(mean) != ch or len(std) != ch:
        return None
    return ImagePrep(spec.name, int(h), int(w), int(ch), layout, mean, std, resize, order, origin)


def _from_build(d: Path, m: dict, name: str | None) -> ServedModel:
    arts = [a for a in m.get("artifacts", []) if a.get("format") == "tflite" and a.get("variant")]
    if not arts:
        raise InputError("the manifest lists no .tflite variants", where=str(d / "manifest.json"),
                         hint="the build did not finish; rebuild it")
    variants = {a["variant"]: _variant(d / a["path"], a["variant"]) for a in arts}
    cfg = m.get("config", {})
    bundle = cfg.get("bundle") or {}
    labels = _labels_file(d / "bundle" / "labels.txt") or _labels_file(Path(bundle["labels"]) if
                                                                      bundle.get("labels") else None)
    # The build's variants take the source's normalized values: (pixels/255 - mean) / std.
    for v in variants.values():
        if len(v.inputs) == 1:
            ch = v.inputs[0].shape[-1] if len(v.inputs[0].shape) == 4 else 0
            mean = cfg.get("mean") or (IMAGENET_MEAN if ch == 3 else (0.0,))
            std = cfg.get("std") or (IMAGENET_STD if ch == 3 else (1.0,))
            v.prep = _image_prep(v.inputs[0], [x * 255 for x in mean], [x * 255 for x in std],
                                 cfg.get("image_resize"), cfg.get("channel_order") or "rgb",
                                 "the build's config" if cfg.get("mean") else "ImageNet's (the build's default)")
    src = m.get("source", {}).get("path") or d.name
    default_name = bundle.get("name") or Path(src).stem
    return _finish(ServedModel(clean_name(name or default_name), "build", str(d), variants, labels))


def _from_bundle(d: Path, m: dict, name: str | None) -> ServedModel:
    variants = {}
    for row in m.get("models", []):
        v = _variant(d / row["file"], row["variant"])
        inp = (row.get("inputs") or [{}])[0]
        norm = inp.get("normalization")
        if len(v.inputs) == 1 and norm:
            v.prep = _image_prep(v.inputs[0], norm["mean"], norm["std"], origin="the bundle's metadata")
        variants[row["variant"]] = v
    if not variants:
        raise InputError("the bundle manifest lists no models", where=str(d / "manifest.json"))
    lab = (m.get("labels") or {}).get("file")
    labels = _labels_file(d / lab) if lab else None
    return _finish(ServedModel(clean_name(name or m.get("name") or d.name), "bundle", str(d), variants, labels))


def _from_tflite(p: Path, name: str | None) -> ServedModel:
    from edgec.formats.metadata.reader import read_metadata

    stem = p.stem
    variant = stem[len("model_"):] if stem.startswith("model_") and len(stem) > 6 else "default"
    v = _variant(p, variant)
    labels = None
    meta, files = read_metadata(p)
    if meta is not None:
        if len(v.inputs) == 1 and meta.inputs and meta.inputs[0].normalization is not None:
            n = meta.inputs[0].normalization
            v.prep = _image_prep(v.inputs[0], n.mean, n.std, origin="the model's TFLite metadata")
        for out in meta.outputs:
            for f in out.files:
                if f.type == "TENSOR_AXIS_LABELS" and f.name in files:
                    labels = [ln for ln in files[f.name].decode("utf-8", "replace").splitlines() if ln.strip()]
    base = meta.name if meta is not None and meta.name else (p.parent.name if variant != "default" else stem)
    return _finish(ServedModel(clean_name(name or base), "tflite", str(p), {variant: v}, labels))


def _finish(model: ServedModel) -> ServedModel:
    """An image classifier: every variant has an image input and one output with a class per label."""
    def classifier(v: Variant) -> bool:
        return v.prep is not None and len(v.outputs) == 1 and int(np.prod([d or 0 for d in v.outputs[0].shape])) \
            == len(model.labels or ())

    if model.labels and all(classifier(v) for v in model.variants.values()):
        model.task = "image_classifier"
    elif model.labels:
        model.notes.append(f"{len(model.labels)} labels found, but not every variant has an image input and one "
                           "output with one score per label: classify is off")
    else:
        model.notes.append("no class labels (build with --labels to classify images): classify is off")
    return model
