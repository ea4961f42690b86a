"""Sample data for calibration and validation: image folders, ``.npy``/``.npz`` arrays, or a Python
generator, turned into checked samples keyed by the source model's input names, in its layout.

Every sample is checked before use: a missing or unknown input, a wrong shape, a non-integer value
for an integer input, or NaN/Inf in a float input is refused with the file (or generator) and the
input named. Calibration and validation samples must be disjoint: the same source given for both is
split (seeded), different sources that share a sample are refused.
"""

from __future__ import annotations

import hashlib
import re
from dataclasses import dataclass
from pathlib import Path

import numpy as np

from edgec.errors import InputError, UsageError
from edgec.formats import TensorSpec

IMAGE_EXTENSIONS = (".png", ".jpg", ".jpeg", ".bmp", ".gif", ".webp", ".tif", ".tiff", ".ppm", ".pgm")
ARRAY_EXTENSIONS = (".npy", ".npz")
IMAGENET_MEAN = (0.485, 0.456, 0.406)
IMAGENET_STD = (0.229, 0.224, 0.225)
_GENERATOR = re.compile(r"^[A-Za-z_][\w.]*:[A-Za-z_]\w*$")


@dataclass(frozen=True)
class Preprocess:
    """How an image file becomes a model input: decoded; resized so its shorter side is ``resize``
    and center-cropped to the input's H x W (ImageNet evaluation: 256 for 224), or, without
    ``resize``, the largest centered crop of the input's aspect resized to H x W; scaled to [0, 1],
    normalized ``(x - mean) / std`` per channel, laid out as the input is (NCHW or NHWC)."""

    resize: int | None = None
    mean: tuple[float, ...] | None = None    # None: ImageNet's for 3 channels, 0 otherwise
    std: tuple[float, ...] | None = None     # None: ImageNet's for 3 channels, 1 otherwise
    channel_order: str = "rgb"               # rgb or bgr
    layout: str | None = None                # nchw or nhwc; None: from the input's shape

    @classmethod
    def from_config(cls, cfg) -> "Preprocess":
        return cls(cfg.image_resize, cfg.mean, cfg.std, cfg.channel_order, cfg.image_layout)

    def to_dict(self) -> dict:
        return {"resize": self.resize, "mean": self.mean, "std": self.std,
                "channel_order": self.channel_order, "layout": self.layout}


@dataclass
class Sample:
    feed: dict[str, np.ndarray]   # source input name -> array (source shape, dtype, layout)
    origin: str                   # the file (and row) or generator item it came from

    def digest(self) -> str:
        h = hashlib.sha256()
        for k in sorted(self.feed):
            a = np.ascontiguousarray(self.feed[k])
            h.update(k.encode() + str(a.dtype).encode() + str(a.shape).encode() + a.tobytes())
        return h.hexdigest()


@dataclass
class Dataset:
    samples: list[Sample]
    source: str                   # the path or generator spec, or "synthetic"
    synthetic: bool = False
    total: int | None = None      # samples available before the limit
    constraints: list[str] | None = None   # synthetic data: the inputs the graph constrains, and how

    @property
    def sha256(self) -> str:
        h = hashlib.sha256()
        for s in self.samples:
            h.update(s.digest().encode())
        return h.hexdigest()

    def record(self) -> dict:
        rec = {"source": self.source, "synthetic": self.synthetic, "samples": len(self.samples),
               "available": self.total if self.total is not None else len(self.samples),
               "sha256": self.sha256}
        if self.constraints is not None:
            rec["constraints"] = list(self.constraints)
        return rec

    def stacked(self, name: str) -> np.ndarray:
        return np.stack([s.feed[name] for s in self.samples])


# -- loading --------------------------------------------------------------------------------------

def load(spec: str, inputs: list[TensorSpec], pre: Preprocess, *, limit: int | None = None,
         role: str = "data") -> Dataset:
    """Load samples from an image folder, a .npy/.npz file (or a folder of them) or a generator."""
    path = Path(spec)
    if not path.exists() and _GENERATOR.match(spec):
        samples = list(_from_generator(spec, inputs, limit))
    elif not path.exists():
        raise UsageError(f"{role} data not found", where=spec,
                         hint="give an image folder, a .npy/.npz file, or package.module:function")
    elif path.is_dir():
        samples = list(_from_folder(path, inputs, pre, role))
    elif path.suffix.lower() in ARRAY_EXTENSIONS:
        samples = list(_from_array_file(path, inputs))
    elif path.suffix.lower() in IMAGE_EXTENSIONS:
        samples = [_from_image(path, _image_input(inputs, str(path)), pre)]
    else:
        raise UsageError(f"cannot read {role} data from a '{path.suffix}' file", where=spec,
                         hint="give an image folder, a .npy/.npz file, or package.module:function")
    if not samples:
        raise InputError(f"no {role} samples found", where=spec,
                         hint=f"image files ({', '.join(IMAGE_EXTENSIONS[:4])}, ...) or .npy/.npz arrays")
    total = len(samples)
    return Dataset(samples[:limit] if limit else samples, spec, total=total)


def synthetic(inputs: list[TensorSpec], n: int, seed: int, constraints: dict | None = None) -> Dataset:
    """Seeded random inputs: standard normal floats, small integers, within ``constraints`` (from
    ``edgec.data.constraints.input_constraints``) where given. Only on an explicit flag."""
    from edgec.data.constraints import describe
    from edgec.runtime.loaders import random_inputs

    samples = [Sample(random_inputs(inputs, seed=seed + i, constraints=constraints), f"synthetic#{i}")
               for i in range(n)]
    return Dataset(samples, "synthetic", synthetic=True,
                   constraints=describe(constraints) if constraints is not None else None)


def _from_folder(path: Path, inputs: list[TensorSpec], pre: Preprocess, role: str):
    files = sorted(p for p in path.rglob("*") if p.is_file() and not p.name.startswith("."))
    images = [p for p in files if p.suffix.lower() in IMAGE_EXTENSIONS]
    arrays = [p for p in files if p.suffix.lower() in ARRAY_EXTENSIONS]
    if images and arrays:
        raise UsageError(f"{role} folder mixes images and arrays", where=str(path),
                         hint="keep one kind of file per folder")
    if images:
        spec = _image_input(inputs, str(path))
        for p in images:
            yield _from_image(p, spec, pre)
    for p in arrays:
        yield from _from_array_file(p, inputs)


def _image_input(inputs: list[TensorSpec], where: str) -> TensorSpec:
    if len(inputs) != 1 or len(inputs[0].shape) != 4:
        names = ", ".join(f"{s.name}{list(s.shape)}" for s in inputs)
        raise UsageError(f"images can feed a model with one 4-D image input; this one has {names}",
                         where=where, hint="give a .npz with one array per input name, or a generator")
    return inputs[0]


def image_layout(spec: TensorSpec, pre: Preprocess) -> tuple[str, int, int, int]:
    """(layout, channels, height, width) of an image input, from its shape unless set."""
    _, a, b, c = spec.shape
    layout = pre.layout or ("nchw" if a in (1, 3, 4) and c not in (1, 3, 4) else
                            "nhwc" if c in (1, 3, 4) else "nchw" if a in (1, 3, 4) else None)
    if layout is None:
        raise UsageError(f"input '{spec.name}' {list(spec.shape)} has no 1, 3 or 4 channel axis",
                         hint="give arrays (.npz) instead of images, or set --image-layout")
    ch, h, w = (a, b, c) if layout == "nchw" else (c, a, b)
    return layout, ch, h, w


def _norm(values, default: tuple[float, ...], ch: int, what: str) -> np.ndarray:
    vals = tuple(values) if values is not None else (default if ch == 3 else (default[0],) * ch)
    if len(vals) == 1:
        vals = vals * ch
    if len(vals) != ch:
        raise UsageError(f"--{what} has {len(vals)} value(s) for a {ch}-channel input")
    return np.asarray(vals, dtype=np.float32)


def _from_image(path: Path, spec: TensorSpec, pre: Preprocess) -> Sample:
    from PIL import Image, UnidentifiedImageError

    layout, ch, h, w = image_layout(spec, pre)
    try:
        with Image.open(path) as img:
            img = _fit(img.convert({1: "L", 3: "RGB", 4: "RGBA"}[ch]), h, w, pre.resize)
            arr = np.asarray(img, dtype=np.float32) / 255.0
    except (UnidentifiedImageError, OSError, ValueError) as exc:
        raise InputError(f"cannot decode image ({exc})", where=str(path), hint="remove or fix the file") from exc
    arr = arr.reshape(h, w, ch)
    if pre.channel_order == "bgr" and ch >= 3:
        arr = arr[..., [2, 1, 0, *range(3, ch)]]
    mean = _norm(pre.mean, IMAGENET_MEAN if ch == 3 else (0.0,), ch, "mean")
    std = _norm(pre.std, IMAGENET_STD if ch == 3 else (1.0,), ch, "std")
    arr = (arr - mean) / std
    arr = arr.transpose(2, 0, 1) if layout == "nchw" else arr
    x = arr[None].astype(spec.dtype if spec.dtype.startswith("float") else "float32")
    return check_sample({spec.name: x}, [TensorSpec(spec.name, spec.shape, x.dtype.name)], str(path))


def _fit(img, h: int, w: int, resize: int | None):
    from PIL import Image

    if not resize:
        return _center_crop(img, w / h).resize((w, h), Image.BILINEAR)
    iw, ih = img.size
    scale = resize / min(iw, ih)
    nw, nh = max(w, round(iw * scale)), max(h, round(ih * scale))
    img = img.resize((nw, nh), Image.BILINEAR)
    left, top = (nw - w) // 2, (nh - h) // 2
    return img.crop((left, top, left + w, top + h))


def _center_crop(img, aspect: float):
    w, h = img.size
    if w / h > aspect:
        nw = int(round(h * aspect))
        return img.crop(((w - nw) // 2, 0, (w - nw) // 2 + nw, h))
    nh = int(round(w / aspect))
    return img.crop((0, (h - nh) // 2, w, (h - nh) // 2 + nh))


def _from_array_file(path: Path, inputs: list[TensorSpec]):
    try:
        data = np.load(path, allow_pickle=False)
    except (OSError, ValueError) as exc:
        raise InputError(f"cannot read arrays ({exc})", where=str(path), hint="save with numpy.save/savez") from exc
    if isinstance(data, np.ndarray):
        if len(inputs) != 1:
            raise InputError(f"a .npy holds one array but the model has {len(inputs)} inputs "
                             f"({', '.join(s.name for s in inputs)})", where=str(path),
                             hint="use a .npz with one array per input name")
        arrays = {inputs[0].name: data}
    else:
        with data:
            arrays = {k: data[k] for k in data.files}
    yield from _rows(arrays, inputs, str(path))


def _rows(arrays: dict[str, np.ndarray], inputs: list[TensorSpec], where: str):
    """Split arrays of shape [N, *shape[1:]] (or [N, *shape]) into N samples."""
    _check_names(arrays, inputs, where)
    counts = {}
    for s in inputs:
        a = np.asarray(arrays[s.name])
        if a.ndim == len(s.shape) + 1 or (a.ndim == len(s.shape) and s.shape[:1] == (1,) and a.ndim > 0):
            counts[s.name] = a.shape[0]
        else:
            raise InputError(f"input '{s.name}' expects samples of shape {list(s.shape)}; the array has "
                             f"shape {list(a.shape)}", where=where,
                             hint=f"stack samples along a new first axis: [N, {', '.join(map(str, s.shape[1:]))}]")
    if len(set(counts.values())) > 1:
        raise InputError(f"inputs have different sample counts: {counts}", where=where)
    n = next(iter(counts.values()))
    for i in range(n):
        feed = {}
        for s in inputs:
            a = np.asarray(arrays[s.name])
            row = a[i] if a.ndim == len(s.shape) + 1 else a[i:i + 1]
            feed[s.name] = row
        yield Sample(check_sample(feed, inputs, f"{where}[{i}]").feed, f"{where}[{i}]")


def _import_callable(spec: str):
    import importlib
    import sys

    mod_name, _, fn_name = spec.partition(":")
    if "" not in sys.path and "." not in sys.path:
        sys.path.insert(0, "")
    try:
        return getattr(importlib.import_module(mod_name), fn_name)
    except (ImportError, AttributeError) as exc:
        raise UsageError(f"cannot import data generator '{spec}' ({exc})",
                         hint="the module must be importable from the current directory or PYTHONPATH") from exc


def _from_generator(spec: str, inputs: list[TensorSpec], limit: int | None):
    fn = _import_callable(spec)
    names = [s.name for s in inputs]
    try:
        items = iter(fn())
    except Exception as exc:
        raise InputError(f"the data generator failed: {type(exc).__name__}: {exc}", where=spec) from exc
    for i, item in enumerate(items):
        if limit and i >= limit:
            break
        if isinstance(item, dict):
            feed = dict(item)
        elif isinstance(item, (list, tuple)):
            feed = dict(zip(names, item))
        else:
            feed = {names[0]: item} if len(names) == 1 else {}
        feed = {k: _to_numpy(v) for k, v in feed.items()}
        yield check_sample(feed, inputs, f"{spec} item {i}")


def _to_numpy(v) -> np.ndarray:
    if hasattr(v, "detach"):
        v = v.detach().cpu().numpy()
    return np.asarray(v)


def _check_names(feed: dict, inputs: list[TensorSpec], where: str) -> None:
    names = [s.name for s in inputs]
    missing = [n for n in names if n not in feed]
    extra = sorted(set(feed) - set(names))
    if missing or extra:
        what = "; ".join(x for x in (f"missing input(s) {', '.join(missing)}" if missing else "",
                                      f"unknown key(s) {', '.join(extra)}" if extra else "") if x)
        raise InputError(what, where=where, hint=f"the model's inputs are: {', '.join(names)}")


def check_sample(feed: dict[str, np.ndarray], inputs: list[TensorSpec], where: str) -> Sample:
    """One sample: every input present, shaped as the model expects (a missing batch dim of 1 is
    added), cast to the input's dtype; NaN/Inf and non-integer values for integer inputs refused."""
    _check_names(feed, inputs, where)
    out = {}
    for s in inputs:
        a = np.asarray(feed[s.name])
        want = tuple(d if d else 1 for d in s.shape)
        if a.shape != want and (1,) + a.shape == want:
            a = a[None]
        if a.shape != want:
            raise InputError(f"input '{s.name}' has shape {list(a.shape)}, the model expects {list(want)}",
                             where=where, hint="resize the data or check the input order/layout")
        if a.dtype.kind not in "biuf":
            raise InputError(f"input '{s.name}' has dtype {a.dtype}, not numeric", where=where)
        if a.dtype.kind == "f" and not np.isfinite(a).all():
            bad = int(np.size(a) - np.isfinite(a).sum())
            raise InputError(f"input '{s.name}' holds {bad} NaN/Inf value(s)", where=where,
                             hint="clean the data; calibration and validation need finite values")
        dtype = np.dtype(s.dtype if s.dtype and s.dtype[:1] in "fiub" else "float32")
        if dtype.kind in "iub" and a.dtype.kind == "f" and not np.array_equal(a, np.round(a)):
            raise InputError(f"input '{s.name}' is {s.dtype} but the data has fractional values",
                             where=where)
        out[s.name] = np.ascontiguousarray(a.astype(dtype, copy=False))
    return Sample(out, where)


# -- calibration vs validation --------------------------------------------------------------------

def same_source(a: str | None, b: str | None) -> bool:
    if not a or not b:
        return False
    pa, pb = Path(a), Path(b)
    if pa.exists() and pb.exists():
        return pa.resolve() == pb.resolve()
    return a == b


def split(ds: Dataset, n_first: int, seed: int, limit_second: int | None) -> tuple[Dataset, Dataset]:
    """A seeded split of one source into two disjoint datasets: the first gets ``n_first`` samples
    (at most half, rounded up), the second the rest."""
    if len(ds.samples) < 2:
        raise UsageError("calibration and validation share one source with fewer than 2 samples",
                         where=ds.source, hint="give --validation-data a different folder")
    order = np.random.default_rng(seed).permutation(len(ds.samples))
    n_first = min(n_first, (len(ds.samples) + 1) // 2)  # validation keeps at least half
    first = [ds.samples[i] for i in sorted(order[:n_first])]
    second = [ds.samples[i] for i in sorted(order[n_first:])]
    if limit_second:
        second = second[:limit_second]
    note = f"{ds.source} (seeded split, seed {seed})"
    return Dataset(first, note, total=ds.total), Dataset(second, note, total=ds.total)


def check_disjoint(calibration: Dataset, validation: Dataset) -> None:
    """Refuse validation samples that also appear among the calibration samples."""
    seen = {s.digest(): s.origin for s in calibration.samples}
    shared = [(seen[d], s.origin) for s in validation.samples if (d := s.digest()) in seen]
    if shared:
        a, b = shared[0]
        raise UsageError(f"{len(shared)} validation sample(s) also appear in the calibration data "
                         f"(e.g. {b} == {a}); validating on calibration samples hides quantization error",
                         where=validation.source,
                         hint="give disjoint sets, or the same path for both to have edgec split it")
