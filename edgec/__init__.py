"""edgec: an edge-deployment compiler and benchmark harness.

The public API (everything the CLI does, a Python user can do):

    import edgec
    result = edgec.build(edgec.BuildConfig(model="model.pt", target="rpi4", out="out"))
    edgec.inspect("model.tflite")
    edgec.load_target("rpi4")

Heavy frameworks (torch, TensorFlow, onnx2tf) are imported only when a step needs them.
"""

__version__ = "0.1.0"

from .config import BuildConfig  # noqa: E402  (light: dataclasses only)
from .errors import EdgecError  # noqa: E402


def build(cfg: "BuildConfig", progress=None):
    from .pipeline import build as _build

    return _build(cfg, progress)


def inspect(path, **kwargs):
    from .inspection import inspect_model

    return inspect_model(path, **kwargs)


def load_target(name_or_path: str):
    from .targets import load_target as _load

    return _load(name_or_path)


def save_torchscript(module, example_inputs, path, input_names=None):
    from .loaders import save_torchscript as _save

    return _save(module, example_inputs, path, input_names)


__all__ = ["BuildConfig", "EdgecError", "build", "inspect", "load_target", "save_torchscript", "__version__"]
