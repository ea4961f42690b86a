"""edgec: an edge-deployment compiler and benchmark harness.

The public API (everything the CLI does, a Python user can do):

    import edgec
    result = edgec.build(edgec.BuildConfig(model="model.pt", target="rpi4", out="out",
                                           validation_data="photos/", calibration_data="calib/"))
    edgec.compare_models("model_fp32.tflite", "model_int8.tflite", data="photos/")  # `edgec parity`
    edgec.inspect("model.tflite")
    edgec.make_bundle("out")              # the Android bundle of a finished build
    edgec.load_target("rpi4")

Heavy frameworks (torch, TensorFlow, onnx2tf) are imported only when a step needs them.
"""

from edgec.environment import __version__  # noqa: E402  (the ground floor)

from edgec.bundle.options import BundleOptions  # noqa: E402  (light: dataclasses only)
from edgec.pipeline.config import BenchConfig, BuildConfig  # noqa: E402  (light: dataclasses only)
from edgec.errors import EdgecError  # noqa: E402


def build(cfg: "BuildConfig", progress=None):
    from edgec.pipeline.build import build as _build

    return _build(cfg, progress)


def inspect(path, **kwargs):
    from edgec.report.inspect import inspect_model

    return inspect_model(path, **kwargs)


def load_target(name_or_path: str):
    from edgec.targets import load_target as _load

    return _load(name_or_path)


def make_bundle(out, options=None, **kwargs):
    """(Re-)create ``OUT/bundle/`` and ``OUT/bundle.zip`` from a finished build (see ``edgec.bundle``)."""
    from edgec.bundle import bundle as _bundle

    return _bundle(out, options, **kwargs)


def compare_models(a, b, **kwargs):
    """``edgec parity A B``: outputs compared, the first divergent layer named (``edgec.pipeline.pairwise``)."""
    from edgec.pipeline.pairwise import compare_models as _compare

    return _compare(a, b, **kwargs)


def save_torchscript(module, example_inputs, path, input_names=None):
    from edgec.runtime.loaders import save_torchscript as _save

    return _save(module, example_inputs, path, input_names)


__all__ = ["BenchConfig", "BuildConfig", "BundleOptions", "EdgecError", "build", "make_bundle", "compare_models", "inspect", "load_target",
           "save_torchscript",
           "__version__"]
