"""The TFLite runner: the one place a TFLite interpreter is constructed.

Self-contained on purpose (the standard library and numpy; the TFLite package is chosen and
imported at load time), so that the same file runs

* in edgec, as ``edgec.runtime.tflite`` (the ledger, localization, bench, bundle check, serve);
* on a board, copied beside ``device_runner.py`` (``edgec.bench.remote``);
* as a script in another interpreter or venv: ``python tflite.py --probe MODEL --package
  tflite_runtime`` prints whether that package loads the model (``edgec.targets.compat``), and
  the litert-torch child loads it by path.

The lifecycle, as for every runner of ``edgec.runtime``: ``load`` -> ``inputs``/``outputs``
(``TensorInfo`` rows: name, shape, dtype, quantization) -> ``infer`` on named arrays -> ``close``;
a runner is also a context manager, and loads itself on first use. Quantized I/O is converted
here and only here (``quantize_array``/``dequantize_array``): ``infer`` takes and returns real
values; ``set_inputs`` + ``invoke`` is the hot path a timing loop calls (the interpreter's own
``invoke``, nothing added).

A load that fails is one error naming the cause: custom ops without a kernel (with the nodes
that use them, read from the flatbuffer), builtin ops newer than the runtime, a file the runtime
cannot read. Inside edgec these are ``EdgecError``s (``UnsupportedOpsError``,
``UnsupportedModelError``, ``InputError``, ``DependencyError``); where edgec is not importable
(a board) the same text comes as ``LoadError``.
"""

from __future__ import annotations

import os
import sys

if __name__ == "__main__":  # a script: this folder's onnxruntime.py/tensorflow.py must not shadow the packages
    _here = os.path.dirname(os.path.abspath(__file__))
    sys.path[:] = [p for p in sys.path if os.path.abspath(p or os.curdir) != _here]

import json
import re
from dataclasses import dataclass

import numpy as np

def _quiet():
    """``edgec.logs.captured()`` inside edgec (TFLite's own log lines stay off the terminal unless
    --debug); where edgec is not importable (a board, another venv) TFLite prints as it likes."""
    try:
        from edgec.logs import captured
    except ImportError:
        import contextlib

        return contextlib.nullcontext()
    return captured()


# package -> (module holding Interpreter, distribution whose version is reported)
PACKAGES = {"ai_edge_litert": ("ai_edge_litert.interpreter", "ai-edge-litert"),
            "tflite_runtime": ("tflite_runtime.interpreter", "tflite-runtime"),
            "tensorflow": ("tensorflow.lite.python.interpreter", "tensorflow")}  # tf.lite.Interpreter
AUTO_ORDER = ("ai_edge_litert", "tflite_runtime")   # tensorflow (tf.lite, deprecated) only when named
DELEGATES = ("default", "xnnpack", "none")   # default = xnnpack: the interpreter's default delegates
# Custom ops the stock op resolver registers: a model using them loads anywhere.
STOCK_CUSTOM_OPS = frozenset({"TFLite_Detection_PostProcess", "Mfcc", "AudioSpectrogram"})


# -- what every runner shares -----------------------------------------------------------------------

@dataclass(frozen=True)
class TensorInfo:
    """One input or output as a runner sees it (``edgec.formats.TensorSpec``'s fields, plus the
    quantization of a quantized integer tensor and where the runtime keeps it)."""

    name: str
    shape: tuple
    dtype: str
    quantization: tuple | None = None   # (scale, zero point) of a quantized tensor, else None
    index: int | None = None            # the runtime's tensor index, where it has one
    tensor: str | None = None           # the graph's tensor name, when ``name`` is a signature name
    layout: str | None = None

    @property
    def is_static(self) -> bool:
        return all(isinstance(d, int) and d >= 0 for d in self.shape)

    def to_dict(self) -> dict:
        return {"name": self.name, "shape": list(self.shape), "dtype": self.dtype, "layout": self.layout,
                **({"quantization": list(self.quantization)} if self.quantization else {})}


class Runner:
    """One model loaded in one runtime. Subclasses implement ``_load``, ``_close``, ``inputs``,
    ``outputs`` and ``infer``; ``load`` is idempotent and every use loads first."""

    name = "runner"

    def __init__(self):
        self._loaded = False

    def load(self):
        if not self._loaded:
            self._load()
            self._loaded = True
        return self

    def close(self) -> None:
        if self._loaded:
            self._close()
            self._loaded = False

    @property
    def loaded(self) -> bool:
        return self._loaded

    def __enter__(self):
        return self.load()

    def __exit__(self, *exc) -> None:
        self.close()

    def _load(self) -> None:
        raise NotImplementedError

    def _close(self) -> None:
        raise NotImplementedError

    def inputs(self) -> list[TensorInfo]:
        raise NotImplementedError

    def outputs(self) -> list[TensorInfo]:
        raise NotImplementedError

    def infer(self, feed: dict) -> dict:
        raise NotImplementedError


def quantize_array(x, dtype, scale: float, zero: int) -> np.ndarray:
    """Float -> the integer type of a quantized input (round to nearest, saturate). Integers pass
    through as the input's type (they are already quantized values)."""
    if np.asarray(x).dtype.kind in "iu":
        return np.asarray(x).astype(dtype)
    info = np.iinfo(dtype)
    return np.clip(np.round(np.asarray(x, np.float64) / scale + zero), info.min, info.max).astype(dtype)


def dequantize_array(q, scale, zero, axis: int | None = None) -> np.ndarray:
    """Integer -> float: (q - zero) * scale, per tensor or per channel along ``axis``."""
    q = np.asarray(q)
    scale, zero = np.asarray(scale, np.float64), np.asarray(zero, np.float64)
    if scale.ndim and scale.size > 1 and axis is not None:
        shape = [1] * q.ndim
        shape[axis] = -1
        scale, zero = scale.reshape(shape), zero.reshape(shape)
    return ((q.astype(np.float64) - zero) * scale).astype(np.float32)


# -- the package ------------------------------------------------------------------------------------

class LoadError(RuntimeError):
    """The runtime cannot load the model (edgec not importable here: a board, another venv).
    ``custom_ops``: the custom ops it found no kernel for; ``reason``: the runtime's own line."""

    def __init__(self, message: str, *, package: str | None = None, version: str | None = None,
                 reason: str = "", custom_ops: list[str] | None = None, missing: bool = False):
        super().__init__(message)
        self.package, self.version, self.reason = package, version, reason
        self.custom_ops = custom_ops or []
        self.missing = missing      # no TFLite package imports at all


def _version(package: str, module) -> str:
    from importlib import metadata

    try:
        return metadata.version(PACKAGES[package][1])
    except Exception:  # noqa: BLE001 - a vendored copy without dist metadata
        top = sys.modules.get(PACKAGES[package][0].split(".")[0])
        return str(getattr(module, "__version__", None) or getattr(top, "__version__", None) or "unknown")


def find_package(package: str = "auto"):
    """(interpreter module, package, version, errors): the named package, or with ``auto`` the
    first of ai_edge_litert, tflite_runtime that imports. The module is None (and
    ``errors`` says why) when none does."""
    import importlib

    wanted = package.replace("-", "_")
    if wanted != "auto" and wanted not in PACKAGES:
        raise ValueError(f"unknown TFLite package {package!r} (one of {', '.join(PACKAGES)} or auto)")
    errors = []
    for name in (AUTO_ORDER if wanted == "auto" else (wanted,)):
        try:
            mod = importlib.import_module(PACKAGES[name][0])
        except ImportError as exc:
            errors.append(f"{name}: {exc}")
            continue
        return mod, PACKAGES[name][1], _version(name, mod), errors
    return None, None, None, errors


def _resolver_none(mod):
    return mod.OpResolverType.BUILTIN_WITHOUT_DEFAULT_DELEGATES


# -- the runner -------------------------------------------------------------------------------------

class TFLite(Runner):
    """A .tflite in a TFLite interpreter. Tensors are named by the ``signature``'s names where the
    model has that signature, else by their graph names.

    ``package``: ai_edge_litert, tflite_runtime, tensorflow (tf.lite) or auto (the first of
    ai_edge_litert, tflite_runtime that imports); once loaded, ``package`` and ``version`` name the
    distribution that loaded it. ``delegate``: default/xnnpack (the interpreter's default
    delegates) or none (the builtin kernels, every op output kept apart: what layer localization
    reads). ``threads``: 0 leaves it to the runtime.
    ``allocate``: prepare every node at load (so a missing kernel fails there); False defers it to
    the first run, for a caller that only reads the signatures."""

    name = "tflite"

    def __init__(self, path, *, package: str = "auto", delegate: str = "default", threads: int = 0,
                 signature: str | None = "serving_default", preserve_all_tensors: bool = False,
                 allocate: bool = True):
        super().__init__()
        if delegate not in DELEGATES:
            raise ValueError(f"unknown TFLite delegate {delegate!r} (one of {', '.join(DELEGATES)})")
        self.path, self.delegate, self.threads = str(path), delegate, int(threads or 0)
        self.requested = package              # what was asked for; ``package``: what loaded it
        self.package: str | None = None
        self.want_signature, self.preserve_all_tensors = signature, preserve_all_tensors
        self.allocate, self._allocated = allocate, False
        self.version: str | None = None
        self._interp = self._sig = None

    # lifecycle
    def _load(self) -> None:
        mod, self.package, self.version, errors = find_package(self.requested)
        if mod is None:
            raise _missing(self.requested, errors)
        kwargs = {"model_path": self.path, "num_threads": self.threads or None}
        if self.delegate == "none":
            kwargs["experimental_op_resolver_type"] = _resolver_none(mod)
        if self.preserve_all_tensors:  # intermediates stay readable after invoke (for layer comparisons)
            kwargs["experimental_preserve_all_tensors"] = True
        try:
            with _quiet():
                self._interp = mod.Interpreter(**kwargs)
            if self.allocate:
                self._allocate()
            sigs = self._interp.get_signature_list() if self.want_signature else {}
            self._sig = self._interp.get_signature_runner(self.want_signature) \
                if self.want_signature in sigs else None
        except Exception as exc:  # noqa: BLE001 - the runtime's own exception types
            self._interp = self._sig = None
            raise load_error(self.path, self.package, self.version, exc) from None
        self._describe()

    def _allocate(self) -> None:
        with _quiet():  # the default delegate is applied here: "INFO: Created TensorFlow Lite XNNPACK delegate"
            self._interp.allocate_tensors()  # prepares every node: a missing kernel fails here
        self._allocated = True

    def _close(self) -> None:
        self._interp = self._sig = None
        self._allocated = False

    def _describe(self) -> None:
        interp = self._interp
        main_in = {d["index"]: d for d in interp.get_input_details()}
        main_out = [d["index"] for d in interp.get_output_details()]
        if self._sig is not None:
            ins = self._sig.get_input_details()
            outs = self._sig.get_output_details()
            order = {idx: i for i, idx in enumerate(main_out)}
            # Signature maps are sorted by name; the model's own output order is the graph's.
            out_items = sorted(outs.items(), key=lambda kv: order.get(kv[1]["index"], len(order)))
            tensor = {d["index"]: d["name"] for d in interp.get_tensor_details()}
            self._inputs = [_info(k, d, tensor.get(d["index"])) for k, d in ins.items()]
            self._outputs = [_info(k, d, tensor.get(d["index"])) for k, d in out_items]
        else:
            self._inputs = [_info(d["name"], d, d["name"]) for d in main_in.values()]
            self._outputs = [_info(d["name"], d, d["name"]) for d in interp.get_output_details()]
        self._by_name = {t.name: t for t in self._inputs + self._outputs}
        self._by_name.update({t.tensor: t for t in self._inputs + self._outputs if t.tensor})

    # metadata
    def inputs(self) -> list[TensorInfo]:
        self.load()
        return list(self._inputs)

    def outputs(self) -> list[TensorInfo]:
        self.load()
        return list(self._outputs)

    @property
    def interpreter(self):
        """The loaded interpreter, for what only it can say (every tensor's details, the ops)."""
        return self.load()._interp

    @property
    def signature(self) -> str | None:
        """The signature tensors are named by (None: graph names)."""
        return self.load().want_signature if self._sig is not None else None

    def signatures(self) -> dict:
        return self.load()._interp.get_signature_list()

    def _tensor(self, name: str) -> TensorInfo:
        self.load()
        t = self._by_name.get(name)
        if t is None:
            raise KeyError(f"the model has no tensor {name!r} (inputs: {', '.join(i.name for i in self._inputs)}; "
                           f"outputs: {', '.join(o.name for o in self._outputs)})")
        return t

    # quantized I/O: the one place
    def prepare_input(self, name: str, x) -> np.ndarray:
        """A real-valued array -> what input ``name`` takes: quantized with its scale and zero point,
        an integer narrowed to the input's width (refused if a value does not fit), a float of
        another width cast."""
        t = self._tensor(name)
        want, x = np.dtype(t.dtype), np.asarray(x)
        if t.quantization:
            return quantize_array(x, want, *t.quantization)
        if x.dtype == want:
            return x
        if x.dtype.kind in "iu" and want.kind in "iu":
            info = np.iinfo(want)
            if x.size and (x.min() < info.min or x.max() > info.max):
                raise ValueError(f"input '{name}' holds values outside {want.name}, the type the model takes")
            return x.astype(want)
        if x.dtype.kind == "f" and want.kind == "f":
            return x.astype(want)
        return x

    def real_output(self, name: str, y) -> np.ndarray:
        """Output ``name`` as real values (dequantized when it is quantized)."""
        t = self._tensor(name)
        return dequantize_array(y, *t.quantization) if t.quantization else y

    # running
    def infer(self, feed: dict, *, raw: tuple | set = ()) -> dict:
        """Named real-valued inputs -> named outputs (dequantized, except those named in ``raw``),
        in the model's output order. Names are the runner's (``inputs()``) or graph tensor names."""
        self.load()
        args = {self._tensor(k).name: self.prepare_input(k, v) for k, v in feed.items()}
        try:
            if self._sig is not None:
                res = self._sig(**args)
            else:
                if not self._allocated:
                    self._allocate()
                for k, v in args.items():
                    self._interp.set_tensor(self._by_name[k].index, v)
                self._interp.invoke()
                res = {t.name: self._interp.get_tensor(t.index) for t in self._outputs}
        except RuntimeError as exc:  # a kernel the runtime found missing only when invoked (another subgraph)
            if custom_ops_in(str(exc)):
                raise load_error(self.path, self.package, self.version, exc) from None
            raise
        return {t.name: (res[t.name] if t.name in raw else self.real_output(t.name, res[t.name]))
                for t in self._outputs}

    def set_inputs(self, feed: dict) -> None:
        """Set the inputs once (converted as ``infer`` does) for ``invoke`` to run on."""
        self.load()
        if not self._allocated:
            try:
                self._allocate()
            except Exception as exc:  # noqa: BLE001 - the runtime's own exception types
                raise load_error(self.path, self.package, self.version, exc) from None
        for k, v in feed.items():
            self._interp.set_tensor(self._tensor(k).index, np.ascontiguousarray(self.prepare_input(k, v)))

    @property
    def invoke(self):
        """The interpreter's own invoke: what a timing loop calls (inputs set by ``set_inputs``)."""
        return self.load()._interp.invoke

    def get_outputs(self, raw: tuple | set = ()) -> dict:
        """The outputs of the last ``invoke``, by name."""
        return {t.name: (self._interp.get_tensor(t.index) if t.name in raw else
                         self.real_output(t.name, self._interp.get_tensor(t.index))) for t in self.outputs()}


def _info(name: str, d: dict, tensor: str | None) -> TensorInfo:
    dtype = np.dtype(d["dtype"])
    scale, zero = d.get("quantization") or (0.0, 0)
    quant = (float(scale), int(zero)) if dtype.kind in "iu" and scale else None
    return TensorInfo(name, tuple(int(x) for x in d["shape"]), dtype.name, quant, int(d["index"]),
                      tensor if tensor != name else None)


# -- load errors ------------------------------------------------------------------------------------

_CUSTOM = (re.compile(r"unresolved custom op: (\S+?)\.?(?:\s|$)"),
           re.compile(r"Didn't find custom operator for name '([^']+)'"))
_BUILTIN = re.compile(r"Didn't find op for builtin opcode '[^']+' version '\d+'|Op builtin_code out of range: \d+")


def custom_ops_in(text: str) -> list[str]:
    """The custom ops a runtime's error message says it has no kernel for."""
    found = []
    for pattern in _CUSTOM:
        for name in pattern.findall(text):
            if name not in found:
                found.append(name)
    return found


def reason_line(text: str) -> str:
    """The line of a runtime's error message that says why (an op it lacks), else its last line."""
    lines = [ln.strip() for ln in text.strip().splitlines() if ln.strip()]
    for ln in lines:
        if _BUILTIN.search(ln) or custom_ops_in(ln):
            return ln
    return lines[-1] if lines else "no message"


def _missing(package: str, errors: list[str]) -> Exception:
    what = f"no TFLite runtime imports here ({'; '.join(errors)})"
    hint = "install ai-edge-litert (pip install ai-edge-litert), or tflite-runtime"
    try:
        from edgec.errors import DependencyError
    except ImportError:
        return LoadError(f"{what} ({hint})", package=package, missing=True)
    return DependencyError(what, hint=hint)


def _custom_hint(names, package: str, version: str) -> str:
    if all(n.startswith("Flex") for n in names):
        return (f"these are TensorFlow ops (Select TF ops), which {package} {version} has no kernels for: run "
                "the model with the full tensorflow package's interpreter (it links the Flex delegate) or an app "
                "built with the select-tf-ops library, or convert it without SELECT_TF_OPS")
    return (f"{package} {version} has no kernel for these custom ops: run the model with a runtime built with "
            "them registered (an app's own op resolver, e.g. MediaPipe's) or a delegate that provides them, "
            "or convert the model without them")


def load_error(path: str, package: str | None, version: str | None, exc: BaseException) -> Exception:
    """The error for a failed load: which ops (or what) the runtime could not handle, and what to
    do. An ``EdgecError`` where edgec imports, else a ``LoadError`` with the same message."""
    text = str(exc)
    named, reason = custom_ops_in(text), reason_line(text)
    rt = f"{package} {version}"
    try:
        from edgec import errors
    except ImportError:
        if named:
            msg = f"{rt} cannot load the model: no kernel for custom op(s) {', '.join(named)} ({reason})"
        else:
            msg = f"{rt} cannot load the model: {reason}"
        return LoadError(msg, package=package, version=version, reason=reason, custom_ops=named)
    if named:
        ops = _graph_custom_ops(path, named)
        err = errors.UnsupportedOpsError(f"TFLite runtime ({rt})", ops, where=path,
                                         hint=_custom_hint(list(ops), package, version))
    elif _BUILTIN.search(text):
        err = errors.UnsupportedModelError(
            f"{rt} cannot load the model: {reason}", where=path,
            hint="the runtime is older than the ops the model uses: update it, or convert for that runtime "
                 "(`edgec bench --target` lists the ops and the runtime each needs)")
    elif "identifier" in text or "Could not open" in text or "corrupted" in text.lower():
        err = errors.InputError(f"{rt} cannot read the model: {reason}", where=path, hint="re-export the model")
    else:
        return exc
    err.reason, err.custom_ops = reason, named  # the runtime's own line, for a record that quotes it
    return err


def _graph_custom_ops(path: str, named: list[str]) -> dict[str, list[str]]:
    """{custom op: nodes using it}: the ops the runtime named, and the graph's other custom ops that
    the stock resolver does not register (the runtime stops at the first, so it names one)."""
    from edgec.formats.tflite import read_tflite

    try:
        found = read_tflite(path).custom_ops()
    except Exception:  # noqa: BLE001 - the runtime's message alone still names the op
        found = {}
    ops = {n: found.get(n) or ["(node named by the runtime)"] for n in named}
    ops.update({n: nodes for n, nodes in found.items() if n not in ops and n not in STOCK_CUSTOM_OPS})
    return ops


# -- as a script: does a package load the model? ----------------------------------------------------

def probe(path: str, package: str = "auto") -> dict:
    """Load (and allocate) ``path`` with ``package``; what happened, as data."""
    runner = TFLite(path, package=package)
    try:
        runner.load()
    except Exception as exc:  # noqa: BLE001 - reported, not raised: the caller is another process
        return {"loaded": False, "package": runner.package or runner.requested, "version": runner.version,
                "error": getattr(exc, "reason", "") or reason_line(str(exc)),
                "custom_ops": getattr(exc, "custom_ops", None) or custom_ops_in(str(exc)),
                "missing": getattr(exc, "missing", False)}
    return {"loaded": True, "package": runner.package, "version": runner.version,
            "inputs": [t.to_dict() for t in runner.inputs()], "outputs": [t.to_dict() for t in runner.outputs()]}


PROBE_MARK = "EDGEC-PROBE "


def main(argv: list[str]) -> int:
    import argparse

    ap = argparse.ArgumentParser(description="load a .tflite with a TFLite package and say whether it loaded")
    ap.add_argument("--probe", required=True, metavar="MODEL")
    ap.add_argument("--package", default="auto", help="ai_edge_litert, tflite_runtime, tensorflow or auto")
    args = ap.parse_args(argv)
    result = probe(args.probe, args.package)
    sys.stdout.write(PROBE_MARK + json.dumps(result) + "\n")
    return 0 if result["loaded"] else 1


if __name__ == "__main__":
    sys.exit(main(sys.argv[1:]))
