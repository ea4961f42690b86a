"""The PyTorch runner: a module (TorchScript, ExportedProgram, eager) called on named arrays.

The lifecycle is the runners' (``edgec.runtime.tflite.Runner``): ``load`` -> ``inputs``/``outputs``
-> ``infer`` -> ``close``. A module is given, or loaded from a file with ``edgec.runtime.loaders``
(which refuses an untrusted pickle). Inputs go to ``forward`` positionally, in the feed's order;
outputs (nested tuples, lists, dicts) are flattened to ``output_0``, ``output_1``, ...
"""

from __future__ import annotations

from pathlib import Path

import numpy as np

from edgec.errors import require
from edgec.runtime.tflite import Runner, TensorInfo


def flatten(out) -> list:
    """A module's (nested) outputs as a flat list of tensors, in order."""
    if isinstance(out, dict):
        out = list(out.values())
    if isinstance(out, (list, tuple)):
        res = []
        for o in out:
            res.extend(flatten(o))
        return res
    return [out]


class Torch(Runner):
    name = "torch"

    def __init__(self, module=None, *, path: Path | str | None = None, fmt=None, trust_pickle: bool = False,
                 input_specs: list | None = None):
        super().__init__()
        if module is None and path is None:
            raise ValueError("Torch needs a module or a path")
        self.module, self.path, self.fmt, self.trust_pickle = module, path, fmt, trust_pickle
        self._given = module is not None
        self.input_specs = list(input_specs or [])
        self._out_specs: list[TensorInfo] = []

    def _load(self) -> None:
        if self.module is None:
            from edgec.runtime.loaders import load_torch

            self.module = load_torch(Path(self.path), self.fmt, trust_pickle=self.trust_pickle)

    def _close(self) -> None:
        if not self._given:
            self.module = None

    def inputs(self) -> list[TensorInfo]:
        """The input specs given, else the names ``forward`` takes (shapes unknown: ``()``)."""
        if self.input_specs:
            return [TensorInfo(s.name, tuple(s.shape), s.dtype) for s in self.input_specs]
        from edgec.runtime.loaders import _forward_arg_names

        return [TensorInfo(n, (), "") for n in _forward_arg_names(self.load().module)]

    def outputs(self) -> list[TensorInfo]:
        """The outputs of the last ``infer`` (a module states none before it runs)."""
        return list(self._out_specs)

    def infer(self, feed: dict) -> dict:
        torch = require("torch")
        self.load()
        with torch.no_grad():
            out = self.module(*[torch.from_numpy(np.ascontiguousarray(v)) for v in feed.values()])
        ys = [t.detach().cpu().numpy() for t in flatten(out)]
        self._out_specs = [TensorInfo(f"output_{i}", tuple(y.shape), y.dtype.name) for i, y in enumerate(ys)]
        return {t.name: y for t, y in zip(self._out_specs, ys)}
