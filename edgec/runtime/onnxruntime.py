"""The ONNX Runtime runner: the one place an ``onnxruntime.InferenceSession`` is constructed.

A model is a path or serialized bytes (a probe graph, a sub-graph with chosen outputs). Options:
``threads`` (intra-op; 0 leaves it to onnxruntime), ``providers`` (CPU, or CUDA then CPU), and the
log level. The lifecycle is the runners' (``edgec.runtime.tflite.Runner``): ``load`` -> ``inputs``/
``outputs`` -> ``infer`` -> ``close``; ``set_inputs`` + ``invoke`` is the hot path a timing loop
calls (``session.run`` on the inputs set once). Load errors are onnxruntime's own: the caller
knows what a failed load means for it (a probe, a ledger stage).
"""

from __future__ import annotations

import functools
from pathlib import Path

import numpy as np

from edgec.errors import require
from edgec.runtime.tflite import Runner, TensorInfo

CPU = ("CPUExecutionProvider",)
CUDA = ("CUDAExecutionProvider", "CPUExecutionProvider")


def _dtype(ort_type: str) -> str:
    """``tensor(float)`` -> ``float32``; a type numpy has no name for keeps onnxruntime's."""
    inner = ort_type[len("tensor("):-1] if ort_type.startswith("tensor(") else ort_type
    names = {"float": "float32", "double": "float64", "float16": "float16", "bfloat16": "bfloat16",
             "int8": "int8", "int16": "int16", "int32": "int32", "int64": "int64", "uint8": "uint8",
             "uint16": "uint16", "uint32": "uint32", "uint64": "uint64", "bool": "bool", "string": "string"}
    return names.get(inner, inner)


class OnnxRuntime(Runner):
    name = "onnxruntime"

    def __init__(self, model: Path | str | bytes, *, threads: int = 0, providers=CPU, log_level: int = 3):
        super().__init__()
        self.model, self.threads, self.providers, self.log_level = model, int(threads or 0), tuple(providers), log_level
        self.version: str | None = None
        self._sess = None
        self._feed: dict = {}

    def _load(self) -> None:
        ort = require("onnxruntime", purpose="running ONNX")
        opts = ort.SessionOptions()
        opts.log_severity_level = self.log_level
        if self.threads:
            opts.intra_op_num_threads = self.threads
        model = self.model if isinstance(self.model, bytes) else str(self.model)
        self._sess = ort.InferenceSession(model, opts, providers=list(self.providers))
        self.version = ort.__version__

    def _close(self) -> None:
        self._sess, self._feed = None, {}

    @property
    def session(self):
        return self.load()._sess

    def used_providers(self) -> list[str]:
        """The execution providers the session took, in priority order."""
        return self.session.get_providers()

    @staticmethod
    def _rows(args) -> list[TensorInfo]:
        return [TensorInfo(a.name, tuple(d if isinstance(d, int) else None for d in a.shape), _dtype(a.type))
                for a in args]

    def inputs(self) -> list[TensorInfo]:
        return self._rows(self.session.get_inputs())

    def outputs(self) -> list[TensorInfo]:
        return self._rows(self.session.get_outputs())

    def infer(self, feed: dict, outputs: list[str] | None = None) -> dict:
        """Named inputs -> named outputs (all, in the graph's order, or ``outputs``)."""
        names = list(outputs) if outputs is not None else [o.name for o in self.session.get_outputs()]
        return dict(zip(names, self.session.run(names, feed)))

    def set_inputs(self, feed: dict) -> None:
        self.load()
        self._feed = {k: np.asarray(v) for k, v in feed.items()}

    @property
    def invoke(self):
        """``session.run`` of every output on the inputs ``set_inputs`` set: what a timing loop calls."""
        return functools.partial(self.session.run, None, self._feed)
