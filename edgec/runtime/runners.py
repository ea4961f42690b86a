"""Runners in the source's layout: any artifact of the graph run on the source model's inputs.

Each wraps the runner of its runtime (``edgec.runtime.tflite``, ``.onnxruntime``, ``.tensorflow``,
``.torch``: load, metadata, infer on the model's own names), takes inputs in the *source* model's
layout and names, and returns outputs in source layout, in the source's output order. Layout permutations (NCHW <-> NHWC) and name mapping
(sanitized names in TF signatures) are the runner's business, so the comparator never sees them.
"""

from __future__ import annotations

from pathlib import Path

import numpy as np

from edgec.errors import InputError
from edgec.formats import Format, TensorSpec
from edgec.formats.layout import layout_perm
from edgec.runtime.loaders import sanitize
from edgec.runtime.onnxruntime import OnnxRuntime
from edgec.runtime.tensorflow import Keras, SavedModel
from edgec.runtime.tflite import TFLite
from edgec.runtime.torch import Torch


def _inverse(perm):
    return list(np.argsort(perm)) if perm is not None else None


def match_io(source: list[TensorSpec], here: list[TensorSpec], hints: list[bool] | None = None) -> list[dict]:
    """Pair each source tensor with a tensor here (by name, sanitized name, then order) and find the
    permutation p with here.shape == source.shape[p]."""
    by_name = {t.name: t for t in here}
    by_clean = {sanitize(t.name.split(":")[0].replace("serving_default_", "")): t for t in here}
    pairs, used = [], set()
    for i, s in enumerate(source):
        t = by_name.get(s.name) or by_clean.get(sanitize(s.name))
        if t is None or t.name in used:
            t = next((u for u in here if u.name not in used), None)
        if t is None:
            raise InputError(f"cannot find a tensor for '{s.name}' in the converted model")
        used.add(t.name)
        hint = hints[i] if hints and i < len(hints) else None
        perm = layout_perm(s.shape, t.shape, hint) if len(s.shape) == len(t.shape) else None
        pairs.append({"source": s.name, "name": t.name, "perm": perm})
    return pairs


class Runner:
    """A runtime's runner (``raw``) seen in the source's names and layout: ``infer`` takes the
    source's inputs and returns the source's outputs, in order."""

    name = "runner"
    raw = None

    def infer(self, feed: dict[str, np.ndarray]) -> list[np.ndarray]:
        raise NotImplementedError

    def close(self) -> None:
        if self.raw is not None:
            self.raw.close()

    def __enter__(self):
        return self

    def __exit__(self, *exc) -> None:
        self.close()


class TorchRunner(Runner):
    name = "torch"

    def __init__(self, module):
        self.raw = Torch(module)

    def infer(self, feed):
        return list(self.raw.infer(feed).values())


class OnnxRunner(Runner):
    name = "onnxruntime"

    def __init__(self, path: Path, source_inputs: list[TensorSpec], threads: int = 0):
        self.raw = OnnxRuntime(path, threads=threads).load()
        self.pairs = match_io(source_inputs, self.raw.inputs())

    def infer(self, feed):
        args = {p["name"]: _to(feed[p["source"]], p["perm"]) for p in self.pairs}
        return list(self.raw.infer(args).values())


def _to(x, perm):
    return np.ascontiguousarray(np.transpose(x, perm)) if perm is not None else x


def _back(y, perm):
    return np.transpose(y, _inverse(perm)) if perm is not None and y.ndim == len(perm) else y


class TFRunner(Runner):
    name = "tensorflow"

    def __init__(self, path: Path, io_map: dict, source_outputs: list[TensorSpec] | None = None):
        self.raw = SavedModel(path).load()
        self.io = io_map
        self.out_shapes = {s.name: tuple(s.shape) for s in source_outputs or [] if s.is_static}

    def infer(self, feed):
        res = self.raw.infer({m["name"]: _to(feed[m["source"]], m["perm"]) for m in self.io["inputs"]})
        return [fit_shape(_back(res[m["name"]], m["perm"]), self.out_shapes.get(m["source"]))
                for m in self.io["outputs"]]


class KerasRunner(Runner):
    name = "keras"

    def __init__(self, path: Path):
        self.raw = Keras(path).load()

    def infer(self, feed):
        return list(self.raw.infer(feed).values())


class TFLiteRunner(Runner):
    """A .tflite (``edgec.runtime.tflite.TFLite``) fed the source's inputs: each paired with the
    model's (edgec's ``io_map`` for a signature it wrote, else by name and shape), permuted into
    the model's layout and quantized as it takes them; outputs dequantized (an integer source
    output stays the integers it is), permuted back, in the source's order."""

    name = "tflite"

    def __init__(self, path: Path, source_inputs: list[TensorSpec], source_outputs: list[TensorSpec],
                 threads: int = 0, out_hints: list[bool] | None = None, reference_kernels: bool = False,
                 io_map: dict | None = None, preserve_all_tensors: bool = False):
        self.raw = TFLite(path, threads=threads, delegate="none" if reference_kernels else "default",
                          preserve_all_tensors=preserve_all_tensors).load()
        self.interp = self.raw.interpreter
        self.sig = self.raw.signature  # None: tensors go by their graph names
        here_in, here_out = self.raw.inputs(), self.raw.outputs()
        # I/O name -> (dtype, scale, zero point) of quantized I/O
        self.quant = {t.name: (np.dtype(t.dtype), *t.quantization) for t in here_in + here_out if t.quantization}
        if io_map and self.sig is not None:
            # Made from edgec's SavedModel: the signature carries the names edgec chose.
            self.in_pairs, self.out_pairs = io_map["inputs"], io_map["outputs"]
        else:
            self.in_pairs = match_io(source_inputs, here_in)
            self.out_pairs = match_io(source_outputs, here_out, out_hints) if source_outputs else \
                [{"source": t.name, "name": t.name, "perm": None} for t in here_out]
        # A quantized output is dequantized to compare with a float source; an integer source output
        # (DynamicQuantizeLinear's uint8, an argmax) is compared as the integers it is.
        self.int_outputs = {p["name"] for p, spec in zip(self.out_pairs, source_outputs or [])
                            if _integer(spec.dtype)} if source_outputs else set()
        self.out_shapes = {spec.name: tuple(spec.shape) for spec in source_outputs or [] if spec.is_static}

    def _in(self, name, x):
        return self.raw.prepare_input(name, x)

    def _out(self, name, y):
        return y if name in self.int_outputs else self.raw.real_output(name, y)

    def infer(self, feed):
        res = self.raw.infer({p["name"]: _to(feed[p["source"]], p["perm"]) for p in self.in_pairs},
                             raw=self.int_outputs)
        return [self._fit(p, _back(res[p["name"]], p["perm"])) for p in self.out_pairs]

    def _fit(self, pair: dict, y: np.ndarray) -> np.ndarray:
        return fit_shape(y, self.out_shapes.get(pair["source"]))


def _squeezed(shape) -> tuple:
    return tuple(d for d in shape if d != 1)


def fit_shape(y: np.ndarray, want) -> np.ndarray:
    """An output whose only difference from the source's shape is where its size-1 axes sit
    ([1,2,128] for [2,1,128]) holds its elements in the same order: reshape it, nothing moves."""
    if want is not None and y.shape != tuple(want) and _squeezed(y.shape) == _squeezed(want):
        return y.reshape(want)
    return y


def _integer(dtype: str) -> bool:
    try:
        return bool(dtype) and np.dtype(dtype).kind in "iub"
    except TypeError:
        return False


def runner_for(fmt: Format, path: Path, *, source_inputs, source_outputs, io_map=None, torch_module=None,
               threads: int = 0, out_hints=None) -> Runner:
    if fmt in (Format.TORCHSCRIPT, Format.EXPORTED_PROGRAM, Format.TORCH_MODULE):
        return TorchRunner(torch_module)
    if fmt is Format.ONNX:
        return OnnxRunner(path, source_inputs, threads)
    if fmt is Format.SAVED_MODEL:
        return TFRunner(path, io_map, source_outputs)
    if fmt is Format.KERAS:
        return KerasRunner(path)
    if fmt is Format.TFLITE:
        return TFLiteRunner(path, source_inputs, source_outputs, threads, out_hints, io_map=io_map)
    raise InputError(f"no runner for format {fmt.value}")
