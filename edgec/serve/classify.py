"""Image in, each variant's top-k out: the picture is fitted and normalized the way the variant's
input was built (``ImagePrep``), the scores are dequantized when the output is quantized, and each
variant is compared with the reference variant (fp32) on the same picture."""

from __future__ import annotations

import io

import numpy as np

from edgec.runtime.tflite import dequantize_array
from edgec.serve.model import ImagePrep, ServedModel, Variant
from edgec.serve.protocol import RequestError

MAX_PIXELS = 64_000_000


def decode(data: bytes, where: str = "the uploaded file"):
    """An RGB PIL image, or a 400 naming the file."""
    from PIL import Image, UnidentifiedImageError

    if not data:
        raise RequestError(400, f"{where} is empty", expected="an image file (PNG, JPEG, BMP, GIF, WebP, TIFF)")
    try:
        img = Image.open(io.BytesIO(data))
        if img.width * img.height > MAX_PIXELS:
            raise RequestError(413, f"{where} is {img.width}x{img.height} pixels",
                               expected=f"at most {MAX_PIXELS} pixels")
        img.load()
        return img.convert("RGB")
    except RequestError:
        raise
    except (UnidentifiedImageError, OSError, ValueError, Image.DecompressionBombError) as exc:
        raise RequestError(400, f"{where} is not an image this server can decode ({type(exc).__name__})",
                           expected="an image file (PNG, JPEG, BMP, GIF, WebP, TIFF)") from None


def to_input(img, prep: ImagePrep, dtype: str, quantized: bool) -> np.ndarray:
    """The variant's input for ``img``: float values (the worker's runner quantizes a quantized input),
    or integers for an unquantized integer input."""
    from edgec.data.datasets import _fit

    mode = {1: "L", 3: "RGB", 4: "RGBA"}[prep.channels]
    arr = np.asarray(_fit(img.convert(mode), prep.height, prep.width, prep.resize), dtype=np.float32)
    arr = arr.reshape(prep.height, prep.width, prep.channels)
    if prep.channel_order == "bgr" and prep.channels >= 3:
        arr = arr[..., [2, 1, 0, *range(3, prep.channels)]]
    arr = (arr - np.asarray(prep.mean, np.float32)) / np.asarray(prep.std, np.float32)
    if prep.layout == "nchw":
        arr = arr.transpose(2, 0, 1)
    x = arr[None]
    kind = np.dtype(dtype).kind
    if kind in "iu" and not quantized:
        info = np.iinfo(dtype)
        return np.clip(np.round(x), info.min, info.max).astype(dtype)
    return np.ascontiguousarray(x.astype(np.float32 if kind in "iu" else dtype))


def scores(v: Variant, y: np.ndarray) -> tuple[np.ndarray, str]:
    """Class probabilities from the output (dequantized; softmax unless it already is a distribution)."""
    name = v.outputs[0].name
    y = np.asarray(y)
    if name in v.quant and y.dtype.kind in "iu":
        y = dequantize_array(y, *v.quant[name])
    y = np.asarray(y, np.float64).reshape(-1)
    if y.size and y.min() >= 0 and y.max() <= 1 and abs(y.sum() - 1) < 1e-3:
        return y, "the model's output (already probabilities)"
    e = np.exp(y - y.max())
    return e / e.sum(), "softmax of the model's output"


def top(model: ServedModel, p: np.ndarray, k: int) -> list[dict]:
    idx = np.argsort(-p)[:k]
    labels = model.labels or []
    return [{"index": int(i), "label": labels[i] if i < len(labels) else str(i), "score": float(p[i])} for i in idx]


def agreement(p: np.ndarray, ref: np.ndarray, k: int) -> dict:
    a, b = np.argsort(-p)[:k], np.argsort(-ref)[:k]
    return {"top1_same": bool(a[0] == b[0]), f"top{k}_overlap": len(set(a.tolist()) & set(b.tolist())) / k,
            "max_abs_prob_diff": float(np.max(np.abs(p - ref)))}
