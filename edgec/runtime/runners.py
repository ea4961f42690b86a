"""Runners: one interface to run any artifact of the graph on named inputs.

Every runner takes inputs in the *source* model's layout and names, and returns outputs in source
layout, in the source's output order. Layout permutations (NCHW <-> NHWC) and name mapping
(sanitized names in TF signatures) are the runner's business, so the comparator never sees them.
"""

from __future__ import annotations

from pathlib import Path

import numpy as np

from edgec.errors import InputError, require
from edgec.formats import Format, TensorSpec
from edgec.runtime.loaders import sanitize


def _inverse(perm):
    return list(np.argsort(perm)) if perm is not None else None


def match_io(source: list[TensorSpec], here: list[TensorSpec], hints: list[bool] | None = None) -> list[dict]:
    """Pair each source tensor with a tensor here (by name, sanitized name, then order) and find the
    permutation p with here.shape == source.shape[p]."""
    from edgec.formats.layout import layout_perm

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
    name = "runner"

    def infer(self, feed: dict[str, np.ndarray]) -> list[np.ndarray]:
        raise NotImplementedError


class TorchRunner(Runner):
    name = "torch"

    def __init__(self, module):
        self.module = module

    def infer(self, feed):
        torch = require("torch")
        with torch.no_grad():
            out = self.module(*[torch.from_numpy(np.ascontiguousarray(v)) for v in feed.values()])
        return [t.detach().cpu().numpy() for t in _flatten(out)]


def _flatten(out):
    if isinstance(out, dict):
        out = list(out.values())
    if isinstance(out, (list, tuple)):
        res = []
        for o in out:
            res.extend(_flatten(o))
        return res
    return [out]


class OnnxRunner(Runner):
    name = "onnxruntime"

    def __init__(self, path: Path, source_inputs: list[TensorSpec], threads: int = 0):
        ort = require("onnxruntime", purpose="running ONNX")
        opts = ort.SessionOptions()
        opts.log_severity_level = 3
        if threads:
            opts.intra_op_num_threads = threads
        self.sess = ort.InferenceSession(str(path), opts, providers=["CPUExecutionProvider"])
        here = [TensorSpec(i.name, tuple(d if isinstance(d, int) else None for d in i.shape), "")
                for i in self.sess.get_inputs()]
        self.pairs = match_io(source_inputs, here)

    def infer(self, feed):
        args = {p["name"]: _to(feed[p["source"]], p["perm"]) for p in self.pairs}
        return list(self.sess.run(None, args))


def _to(x, perm):
    return np.ascontiguousarray(np.transpose(x, perm)) if perm is not None else x


def _back(y, perm):
    return np.transpose(y, _inverse(perm)) if perm is not None and y.ndim == len(perm) else y


class TFRunner(Runner):
    name = "tensorflow"

    def __init__(self, path: Path, io_map: dict, source_outputs: list[TensorSpec] | None = None):
        tf = require("tensorflow", purpose="running a SavedModel")
        self.tf = tf
        self.fn = tf.saved_model.load(str(path)).signatures["serving_default"]
        self.io = io_map
        self.out_shapes = {s.name: tuple(s.shape) for s in source_outputs or [] if s.is_static}

    def infer(self, feed):
        args = {m["name"]: self.tf.constant(_to(feed[m["source"]], m["perm"])) for m in self.io["inputs"]}
        res = self.fn(**args)
        return [fit_shape(_back(res[m["name"]].numpy(), m["perm"]), self.out_shapes.get(m["source"]))
                for m in self.io["outputs"]]


class KerasRunner(Runner):
    name = "keras"

    def __init__(self, path: Path):
        from edgec.runtime.loaders import load_keras

        self.model = load_keras(path)

    def infer(self, feed):
        xs = list(feed.values())
        ys = self.model(xs if len(xs) > 1 else xs[0], training=False)
        ys = list(ys.values()) if isinstance(ys, dict) else ys
        return [np.asarray(y) for y in (ys if isinstance(ys, (list, tuple)) else [ys])]


class TFLiteRunner(Runner):
    name = "tflite"

    def __init__(self, path: Path, source_inputs: list[TensorSpec], source_outputs: list[TensorSpec],
                 threads: int = 0, out_hints: list[bool] | None = None, reference_kernels: bool = False,
                 io_map: dict | None = None, preserve_all_tensors: bool = False):
        from ai_edge_litert import interpreter as lite

        from edgec.formats.tflite import read_tflite

        info = read_tflite(path)
        kwargs = {"num_threads": threads or None}
        if reference_kernels:
            kwargs["experimental_op_resolver_type"] = lite.OpResolverType.BUILTIN_WITHOUT_DEFAULT_DELEGATES
        if preserve_all_tensors:  # intermediates stay readable after invoke (for layer comparisons)
            kwargs["experimental_preserve_all_tensors"] = True
        self.interp = lite.Interpreter(model_path=str(path), **kwargs)
        self.sig = None
        self.quant: dict[str, tuple] = {}  # I/O name -> (dtype, scale, zero point) of quantized I/O
        if "serving_default" in info.signatures:
            sig = info.signatures["serving_default"]
            self.sig = self.interp.get_signature_runner("serving_default")
            sig_in = self.sig.get_input_details()
            here_in = [TensorSpec(k, tuple(int(d) for d in v["shape"]), "") for k, v in sig_in.items()]
            sig_out = self.sig.get_output_details()
            self.quant = _quant_params({**sig_in, **sig_out})
            here_out = [TensorSpec(k, tuple(int(d) for d in v["shape"]), "") for k, v in sig_out.items()]
            # Signature maps are sorted by name; restore the model's own output order.
            order = {name: i for i, name in enumerate(t.name for t in info.outputs)}
            here_out.sort(key=lambda t: order.get(sig["outputs"].get(t.name, ""), 0))
        else:
            self.interp.allocate_tensors()
            self.quant = _quant_params({d["name"]: d for d in self.interp.get_input_details() +
                                        self.interp.get_output_details()})
            here_in = [TensorSpec(d["name"], tuple(int(x) for x in d["shape"]), "")
                       for d in self.interp.get_input_details()]
            here_out = [TensorSpec(d["name"], tuple(int(x) for x in d["shape"]), "")
                        for d in self.interp.get_output_details()]
        if io_map and self.sig is not None:
            # Made from edgec's SavedModel: the signature carries the names edgec chose.
            self.in_pairs, self.out_pairs = io_map["inputs"], io_map["outputs"]
        else:
            self.in_pairs = match_io(source_inputs, here_in)
            self.out_pairs = match_io(source_outputs, here_out, out_hints) if source_outputs else \
                [{"source": t.name, "name": t.name, "perm": None} for t in here_out]
        self.details = {d["name"]: d for d in self.interp.get_input_details()}
        # Integer inputs the converter narrowed (litert-torch takes int64 token ids as int32).
        in_details = self.sig.get_input_details() if self.sig is not None else self.details
        self.in_dtypes = {k: np.dtype(v["dtype"]) for k, v in in_details.items()}
        # A quantized output is dequantized to compare with a float source; an integer source output
        # (DynamicQuantizeLinear's uint8, an argmax) is compared as the integers it is.
        self.int_outputs = {p["name"] for p, spec in zip(self.out_pairs, source_outputs or [])
                            if _integer(spec.dtype)} if source_outputs else set()
        self.out_shapes = {spec.name: tuple(spec.shape) for spec in source_outputs or [] if spec.is_static}

    def _in(self, name, x):
        if name in self.quant:
            return quantize_array(x, *self.quant[name])
        want = self.in_dtypes.get(name)
        if want is not None and x.dtype != want and x.dtype.kind in "iu" and want.kind in "iu":
            info = np.iinfo(want)
            if x.size and (x.min() < info.min or x.max() > info.max):
                raise ValueError(f"input '{name}' holds values outside {want.name}, the type the model takes")
            return x.astype(want)
        return x

    def _out(self, name, y):
        return dequantize_array(y, *self.quant[name][1:]) if name in self.quant and name not in self.int_outputs else y

    def infer(self, feed):
        if self.sig is not None:
            res = self.sig(**{p["name"]: self._in(p["name"], _to(feed[p["source"]], p["perm"]))
                              for p in self.in_pairs})
            return [self._fit(p, _back(self._out(p["name"], res[p["name"]]), p["perm"])) for p in self.out_pairs]
        interp = self.interp
        for p in self.in_pairs:
            idx = next(d["index"] for d in interp.get_input_details() if d["name"] == p["name"])
            interp.set_tensor(idx, self._in(p["name"], _to(feed[p["source"]], p["perm"])))
        interp.invoke()
        outs = {d["name"]: interp.get_tensor(d["index"]) for d in interp.get_output_details()}
        return [self._fit(p, _back(self._out(p["name"], outs[p["name"]]), p["perm"])) for p in self.out_pairs]

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


def _quant_params(details: dict) -> dict:
    """Quantized (integer with a scale) I/O tensors: name -> (dtype, scale, zero point)."""
    out = {}
    for name, d in details.items():
        scale, zero = d.get("quantization", (0.0, 0))
        if np.dtype(d["dtype"]).kind in "iu" and scale:
            out[name] = (np.dtype(d["dtype"]), float(scale), int(zero))
    return out


def quantize_array(x: np.ndarray, dtype, scale: float, zero: int) -> np.ndarray:
    """Float -> the integer type of a quantized input (round to nearest, saturate)."""
    if np.asarray(x).dtype.kind in "iu":
        return np.asarray(x).astype(dtype)
    info = np.iinfo(dtype)
    return np.clip(np.round(np.asarray(x, np.float64) / scale + zero), info.min, info.max).astype(dtype)


def dequantize_array(q: np.ndarray, scale, zero, axis: int | None = None) -> np.ndarray:
    """Integer -> float: (q - zero) * scale, per tensor or per channel along ``axis``."""
    q = np.asarray(q)
    scale, zero = np.asarray(scale, np.float64), np.asarray(zero, np.float64)
    if scale.ndim and scale.size > 1 and axis is not None:
        shape = [1] * q.ndim
        shape[axis] = -1
        scale, zero = scale.reshape(shape), zero.reshape(shape)
    return ((q.astype(np.float64) - zero) * scale).astype(np.float32)


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
