"""Route search: which routes through the format graph a build tries, in which order, and what a
failed attempt teaches the next one.

The base candidates are every simple path from the source format to TFLite, cheapest first
(``edgec.convert.planner.paths``): for a PyTorch source the default torch -> ONNX -> SavedModel -> TFLite,
then onnx2tf's own TFLite writer (torch -> ONNX -> TFLite), then the same with the other
``torch.onnx`` exporter. A failed attempt can add retries in front of the queue: onnx2tf ends every
failed op with advice about its own command-line flags, which an edgec user cannot type, so
``retry_options`` translates that advice (and what the graph holds: NonMaxSuppression, recurrent
ops) into the onnx2tf options of ``edgec.convert._onnx2tf.OPTIONS`` and the retry says, in edgec's
words, what it changed. The pipeline runs the attempts (``edgec.pipeline.build``) and records each one
in the manifest's ``route_search``.
"""

from __future__ import annotations

from collections import deque
from dataclasses import dataclass, field
from typing import Any

from edgec.convert import Converter
from edgec.formats import Format, TensorSpec

MAX_ATTEMPTS = 6
ONNX2TF_CONVERTERS = ("onnx_to_tf", "onnx_to_tflite")
RECURRENT_OPS = {"LSTM", "GRU", "RNN", "Loop", "Scan"}


@dataclass(frozen=True)
class Candidate:
    """One route to try: the converters in order, settings it overrides, and why it is tried."""

    converters: tuple[Converter, ...]
    options: tuple[tuple[str, Any], ...] = ()   # settings overrides, e.g. (("exporter", "legacy"),)
    why: str = ""

    @property
    def settings(self) -> dict:
        out = {}
        for k, v in self.options:
            out[k] = dict(v) if isinstance(v, tuple) else v
        return out

    def formats(self) -> list[str]:
        if not self.converters:
            return []
        return [self.converters[0].src.value] + [c.dst.value for c in self.converters]

    def label(self) -> str:
        return " -> ".join(self.formats())

    def identity(self) -> tuple:
        return tuple(c.name for c in self.converters), self.options

    def uses_onnx2tf(self) -> bool:
        return any(c.name in ONNX2TF_CONVERTERS for c in self.converters)

    def onnx2tf_options(self) -> dict:
        return dict(dict(self.options).get("onnx2tf", ()))

    def with_onnx2tf(self, extra: dict, why: str) -> "Candidate":
        merged = {**self.onnx2tf_options(), **extra}
        opts = {k: v for k, v in self.options if k != "onnx2tf"}
        opts["onnx2tf"] = tuple(sorted(merged.items()))
        return Candidate(self.converters, tuple(sorted(opts.items())), why)

    def describe_options(self) -> dict:
        """The options as the manifest records them: plain JSON."""
        return {k: (dict(v) if isinstance(v, tuple) else v) for k, v in self.options}


def _why_base(i: int, path: list[Converter]) -> str:
    if i == 0:
        return "the cheapest route"
    last = path[-1].name
    if path[-1].env:
        return f"a second converter family ({path[-1].description})"
    if last == "onnx_to_tflite":
        return "onnx2tf's own TFLite writer"
    if "tf_to_onnx" in (c.name for c in path):
        return "through tf2onnx (a cross-check edge; its output is parity-checked)"
    return "another route through the graph"


@dataclass
class Search:
    """The queue of candidates for one build. ``next()`` gives the next one to try; ``failed()``
    tells the search what went wrong, which may put retries at the front."""

    src: Format
    inputs: list[TensorSpec]
    keep_layout: bool = False
    exporter_fixed: bool = False             # the user chose --exporter: never override it
    queue: deque = field(default_factory=deque)
    tried: set = field(default_factory=set)
    learned: dict = field(default_factory=dict)   # onnx2tf options a failure taught (applied to later routes)
    attempts: int = 0
    not_feasible: list = field(default_factory=list)  # routes of the graph this source cannot take, and why
    done: set = field(default_factory=set)        # --compare-routes: converter paths that already passed

    @classmethod
    def for_source(cls, src: Format, paths: list[list[Converter]], inputs: list[TensorSpec], *,
                   keep_layout: bool = False, exporter: str = "auto") -> "Search":
        s = cls(src, inputs, keep_layout, exporter != "auto")
        s.not_feasible = not_feasible(src)
        base = [Candidate(tuple(p), (), _why_base(i, p)) for i, p in enumerate(paths)]
        s.queue.extend(base)
        if src in (Format.EXPORTED_PROGRAM, Format.TORCH_MODULE) and not s.exporter_fixed and base:
            # The other torch.onnx exporter writes different ONNX for the same module (the
            # TorchScript exporter cannot read an ExportedProgram's graph, but can trace the module).
            s.queue.append(Candidate(base[0].converters, (("exporter", "legacy"),),
                                     "the default route with the TorchScript-based torch.onnx exporter"))
        return s

    @classmethod
    def forced(cls, src: Format, path: list[Converter], inputs: list[TensorSpec]) -> "Search":
        s = cls(src, inputs)
        s.queue.append(Candidate(tuple(path), (), "forced with --route"))
        return s

    def next(self) -> Candidate | None:
        while self.queue and self.attempts < MAX_ATTEMPTS:
            cand = self.queue.popleft()
            if self.learned and cand.uses_onnx2tf() and not cand.onnx2tf_options():
                # Try what an earlier failure taught first on this route too; the plain form follows.
                taught = cand.with_onnx2tf(self.learned, f"{cand.why}, with {describe(self.learned)}")
                if taught.identity() not in self.tried:
                    self.queue.appendleft(cand)
                    cand = taught
            if cand.identity() in self.tried or tuple(c.name for c in cand.converters) in self.done:
                continue
            self.tried.add(cand.identity())
            self.attempts += 1
            return cand
        return None

    def passed(self, cand: Candidate) -> None:
        """--compare-routes: this route passed; other options of the same converters are not tried."""
        self.done.add(tuple(c.name for c in cand.converters))

    def failed(self, cand: Candidate, error: Exception | None, graph_ops: set[str] | None,
               parity: dict | None = None) -> None:
        """Queue the retries this failure suggests (at most one per candidate, all options at once):
        from onnx2tf's advice after a failed conversion, or from a converted model whose outputs
        came back with their axes in another order than the source's."""
        if not cand.uses_onnx2tf():
            return
        if error is not None:
            extra = retry_options(getattr(error, "advice", None) or [], graph_ops or set(), self.inputs,
                                  self.keep_layout, cand.onnx2tf_options())
        elif (parity or {}).get("shape_mismatch"):
            extra = retry_options(["input_layout"], set(), self.inputs, self.keep_layout, cand.onnx2tf_options())
        else:
            return
        if not extra:
            return
        self.learned.update(extra)
        retry = cand.with_onnx2tf(extra, f"retry of {cand.label()} with {describe(extra)}")
        if retry.identity() not in self.tried:
            self.queue.appendleft(retry)


def not_feasible(src: Format) -> list[dict]:
    """Converter families registered for other PyTorch formats that this source cannot reach: a
    TorchScript file cannot take litert-torch (torch.export cannot read a ScriptModule)."""
    if src is not Format.TORCHSCRIPT:
        return []
    from edgec.convert import converters

    out = []
    for c in converters():
        if c.env and c.dst is Format.TFLITE and c.src in (Format.EXPORTED_PROGRAM, Format.TORCH_MODULE):
            if c.env == "litert" and not any(r["family"] == c.env for r in out):
                from edgec.convert.litert_torch import NOT_TORCHSCRIPT

                out.append({"route": [src.value, c.dst.value], "family": c.env, "converter": "litert-torch",
                            "reason": NOT_TORCHSCRIPT})
    return out


def retry_options(advice: list[str], graph_ops: set[str], inputs: list[TensorSpec], keep_layout: bool,
                  current: dict) -> dict:
    """onnx2tf options worth a retry after a failure with ``advice`` (keys from onnx2tf's own advice,
    see ``edgec.convert._onnx2tf``) on a graph holding ``graph_ops``; only options that change
    something for this model and were not already set."""
    from edgec.convert._onnx2tf import is_image_input

    out: dict = {}
    op_failure = bool(advice)  # onnx2tf prints its advice after any op it could not convert
    transposed = [s for s in inputs if is_image_input(s)] and not keep_layout
    if ("input_layout" in advice or op_failure) and transposed and current.get("input_layout") != "as_given":
        out["input_layout"] = "as_given"
    if "NonMaxSuppression" in graph_ops and op_failure:
        if not current.get("nms_dynamic_output"):
            out["nms_dynamic_output"] = True
        if "static_shape" in advice and not current.get("batch_size"):
            out["batch_size"] = 1
    if graph_ops & RECURRENT_OPS and op_failure and not current.get("rnn_unroll"):
        out["rnn_unroll"] = True
    return out


_WORDS = {
    ("input_layout", "as_given"): "every input kept as given (no NCHW->NHWC transpose)",
    ("nms_dynamic_output", True): "NonMaxSuppression outputs kept dynamic",
    ("batch_size", 1): "a static batch of 1 everywhere",
    ("rnn_unroll", True): "recurrent loops unrolled",
    ("simplify", False): "onnxsim skipped",
}


def describe(options: dict) -> str:
    return "; ".join(_WORDS.get((k, v), f"{k}={v}") for k, v in sorted(options.items()))
