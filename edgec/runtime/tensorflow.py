"""TensorFlow runners: a SavedModel's serving signature, and a Keras model.

The lifecycle is the runners' (``edgec.runtime.tflite.Runner``): ``load`` -> ``inputs``/``outputs``
-> ``infer`` on named arrays -> ``close``. TensorFlow is imported at load time.
"""

from __future__ import annotations

from pathlib import Path

import numpy as np

from edgec.errors import require
from edgec.runtime.tflite import Runner, TensorInfo


class SavedModel(Runner):
    """A SavedModel's ``signature`` (``serving_default``): named inputs in, named outputs out."""

    name = "tensorflow"

    def __init__(self, path: Path | str, signature: str = "serving_default"):
        super().__init__()
        self.path, self.signature = Path(path), signature
        self._tf = self._fn = None

    def _load(self) -> None:
        self._tf = require("tensorflow", purpose="running a SavedModel")
        self._fn = self._tf.saved_model.load(str(self.path)).signatures[self.signature]

    def _close(self) -> None:
        self._tf = self._fn = None

    def inputs(self) -> list[TensorInfo]:
        self.load()
        _, kw = self._fn.structured_input_signature
        return [TensorInfo(k, tuple(v.shape.as_list()), v.dtype.name) for k, v in sorted(kw.items())]

    def outputs(self) -> list[TensorInfo]:
        self.load()
        return [TensorInfo(k, tuple(v.shape.as_list()), v.dtype.name)
                for k, v in sorted(self._fn.structured_outputs.items())]

    def infer(self, feed: dict) -> dict:
        self.load()
        res = self._fn(**{k: self._tf.constant(v) for k, v in feed.items()})
        return {k: v.numpy() for k, v in res.items()}


class Keras(Runner):
    """A Keras model (``.keras``/``.h5``), called on its inputs in order."""

    name = "keras"

    def __init__(self, path: Path | str):
        super().__init__()
        self.path = Path(path)
        self._model, self._io = None, ([], [])

    def _load(self) -> None:
        from edgec.runtime.loaders import keras_io, load_keras

        self._model = load_keras(self.path)
        self._io = tuple([TensorInfo(s.name, s.shape, s.dtype) for s in specs] for specs in keras_io(self._model))

    def _close(self) -> None:
        self._model, self._io = None, ([], [])

    def inputs(self) -> list[TensorInfo]:
        return list(self.load()._io[0])

    def outputs(self) -> list[TensorInfo]:
        return list(self.load()._io[1])

    def infer(self, feed: dict) -> dict:
        """The feed's arrays in order -> the outputs by the model's output names (in order)."""
        self.load()
        xs = list(feed.values())
        ys = self._model(xs if len(xs) > 1 else xs[0], training=False)
        ys = list(ys.values()) if isinstance(ys, dict) else ys
        ys = [np.asarray(y) for y in (ys if isinstance(ys, (list, tuple)) else [ys])]
        names = [t.name for t in self.outputs()]
        if len(names) != len(ys) or len(set(names)) != len(names):
            names = [f"output_{i}" for i in range(len(ys))]
        return dict(zip(names, ys))
