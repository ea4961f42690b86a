"""Loading models safely and reading their inputs, for every format of the graph.

Safety: ``.pt`` is loaded with ``torch.jit.load`` and ``.pt2`` with ``torch.export.load``; neither
runs arbitrary Python. A ``torch.save`` pickle of a whole module can run code when unpickled, so it
is refused unless the user passes ``--trust-pickle``.
"""

from __future__ import annotations

import importlib
import json
import re
import sys
from pathlib import Path

import numpy as np

from edgec.errors import InputError, UnsupportedModelError, UsageError, require
from edgec.formats import Format, TensorSpec

EXTRA_INPUTS_FILE = "edgec_inputs.json"  # optional extra file in a TorchScript archive: the input specs

_TORCH_DTYPES = {"float32": "float32", "float": "float32", "float16": "float16", "int64": "int64",
                 "long": "int64", "int32": "int32", "int": "int32", "bool": "bool", "uint8": "uint8",
                 "int8": "int8", "float64": "float64", "double": "float64"}

_ONNX_DTYPES = {1: "float32", 2: "uint8", 3: "int8", 5: "int16", 6: "int32", 7: "int64", 9: "bool",
                10: "float16", 11: "float64"}


def sanitize(name: str) -> str:
    """A tensor name that TF signatures and TFLite accept (and the mapping stays predictable)."""
    s = re.sub(r"[^A-Za-z0-9_]", "_", name)
    return s if s and (s[0].isalpha()) else f"t_{s}"


# -- torch ----------------------------------------------------------------------------------------

def _truncated(exc: Exception, path: Path, fmt: str) -> InputError:
    first = (str(exc).strip().splitlines() or [type(exc).__name__])[0][:200]
    return InputError(f"cannot read {fmt} ({first})", where=str(path),
                      hint="the file is truncated or corrupt: re-export it")


def load_torch(path: Path, fmt: Format, *, trust_pickle: bool = False):
    torch = require("torch", purpose=f"reading {path.name}")
    if fmt is Format.TORCHSCRIPT:
        try:
            return torch.jit.load(str(path), map_location="cpu").eval()
        except Exception as exc:
            raise _truncated(exc, path, "TorchScript") from exc
    if fmt is Format.EXPORTED_PROGRAM:
        try:
            return torch.export.load(str(path)).module()
        except Exception as exc:
            raise _truncated(exc, path, "ExportedProgram (.pt2)") from exc
    if fmt is Format.TORCH_MODULE:
        if not trust_pickle:
            raise InputError("is a pickled torch.save file; unpickling it can run arbitrary code",
                             where=str(path),
                             hint="save it with torch.jit.save/torch.export.save, build it with --factory "
                                  "package.module:function, or pass --trust-pickle if you trust its author")
        try:
            obj = torch.load(str(path), map_location="cpu", weights_only=False)
        except Exception as exc:
            raise _truncated(exc, path, "torch pickle") from exc
        if not isinstance(obj, torch.nn.Module):
            raise InputError(f"holds a {type(obj).__name__}, not an nn.Module (a state dict has no architecture)",
                             where=str(path), hint="build the module in code and pass --factory package.module:function")
        return obj.eval()
    raise UsageError(f"{fmt.value} is not a PyTorch format")


def call_factory(spec: str):
    """``package.module:function`` -> (module, example_inputs or None)."""
    mod_name, sep, fn_name = spec.partition(":")
    if not sep or not mod_name or not fn_name:
        raise UsageError(f"--factory '{spec}' is not package.module:function")
    if "" not in sys.path and "." not in sys.path:
        sys.path.insert(0, "")
    try:
        fn = getattr(importlib.import_module(mod_name), fn_name)
    except (ImportError, AttributeError) as exc:
        raise UsageError(f"cannot import factory '{spec}' ({exc})",
                         hint="the module must be importable from the current directory or PYTHONPATH") from exc
    result = fn()
    example = None
    if isinstance(result, tuple) and len(result) == 2:
        result, example = result
    torch = require("torch")
    if not isinstance(result, torch.nn.Module):
        raise UsageError(f"factory '{spec}' returned {type(result).__name__}, not an nn.Module",
                         hint="return the module, or (module, example_inputs)")
    if example is not None and not isinstance(example, (tuple, list)):
        example = (example,)
    return result.eval(), example


def _forward_arg_names(module) -> list[str]:
    import inspect

    try:
        schema = module.forward.schema  # ScriptModule
        return [a.name for a in schema.arguments[1:]]
    except AttributeError:
        pass
    try:
        params = inspect.signature(module.forward).parameters.values()
        return [p.name for p in params if p.kind in (p.POSITIONAL_ONLY, p.POSITIONAL_OR_KEYWORD)]
    except (TypeError, ValueError):
        return []


def torch_input_specs(module, path: Path | None, fmt: Format, shapes: dict, dtypes: dict,
                      example=None) -> list[TensorSpec]:
    """Input specs of a torch model: from an ExportedProgram's graph, a TorchScript extra file,
    a factory's example inputs, or --input-shape. Raises naming the inputs that still need a shape."""
    names = _forward_arg_names(module)
    recorded: dict[str, TensorSpec] = {}
    if fmt is Format.TORCHSCRIPT and path is not None:
        recorded = _torchscript_recorded_specs(path)
        if recorded and len(recorded) == len(names):
            names = list(recorded)  # the names chosen when it was saved (save_torchscript's input_names)
    elif fmt is Format.EXPORTED_PROGRAM and path is not None:
        recorded = _exported_program_specs(path)
        names = list(recorded) or names
    if example is not None:
        for n, t in zip(names, example):
            recorded[n] = TensorSpec(n, tuple(t.shape), str(t.dtype).replace("torch.", ""))
    if not names:
        names = list(shapes) or list(recorded)
    specs = []
    missing = []
    for n in names:
        if n in shapes:
            dt = dtypes.get(n) or (recorded[n].dtype if n in recorded else "float32")
            specs.append(TensorSpec(n, tuple(shapes[n]), dt))
        elif n in recorded and recorded[n].is_static:
            specs.append(recorded[n])
        else:
            missing.append(n)
    unknown = sorted(set(shapes) - set(names))
    if unknown:
        raise UsageError(f"--input-shape names unknown input(s) {', '.join(unknown)}",
                         where=str(path) if path else None, hint=f"the model's inputs are: {', '.join(names)}")
    if missing:
        why = ("TorchScript does not record input shapes" if fmt is Format.TORCHSCRIPT
               else "the model has dynamic or unknown input dims")
        raise UnsupportedModelError(
            f"{why}; input(s) {', '.join(missing)} need a shape", where=str(path) if path else None,
            hint="pass --input-shape " + " ".join(f"{n}=1x3x224x224" for n in missing[:2]))
    return specs


def _torchscript_recorded_specs(path: Path) -> dict[str, TensorSpec]:
    import zipfile

    try:
        with zipfile.ZipFile(path) as z:
            for name in z.namelist():
                if name.endswith("extra/" + EXTRA_INPUTS_FILE):
                    data = json.loads(z.read(name))
                    return {d["name"]: TensorSpec.from_dict(d) for d in data}
    except (zipfile.BadZipFile, ValueError, KeyError):
        pass
    return {}


def _exported_program_specs(path: Path) -> dict[str, TensorSpec]:
    import torch

    ep = torch.export.load(str(path))
    user = set(ep.graph_signature.user_inputs)
    specs = {}
    for node in ep.graph.nodes:
        if node.op == "placeholder" and node.name in user:
            val = node.meta.get("val")
            if val is None or not hasattr(val, "shape"):
                continue
            shape = tuple(int(d) if isinstance(d, int) or str(d).isdigit() else None for d in val.shape)
            specs[node.name] = TensorSpec(node.name, shape, str(val.dtype).replace("torch.", ""))
    return specs


def save_torchscript(module, example_inputs, path: str | Path, input_names=None) -> Path:
    """Trace ``module`` and save it as TorchScript with its input specs recorded, so that
    ``edgec build model.pt`` needs no ``--input-shape``."""
    import torch

    if not isinstance(example_inputs, (tuple, list)):
        example_inputs = (example_inputs,)
    with torch.no_grad():
        traced = torch.jit.trace(module.eval(), tuple(example_inputs))
    names = input_names or _forward_arg_names(traced) or [f"input_{i}" for i in range(len(example_inputs))]
    specs = [TensorSpec(n, tuple(t.shape), str(t.dtype).replace("torch.", "")).to_dict()
             for n, t in zip(names, example_inputs)]
    path = Path(path)
    torch.jit.save(traced, str(path), _extra_files={EXTRA_INPUTS_FILE: json.dumps(specs)})
    return path


def example_inputs(specs: list[TensorSpec], seed: int = 0):
    import torch

    return [torch.from_numpy(a) for a in random_inputs(specs, seed).values()]


def random_inputs(specs: list[TensorSpec], seed: int = 0, constraints: dict | None = None) -> dict[str, np.ndarray]:
    """Deterministic inputs for the given specs (a local RNG; no global seeding): standard normal
    floats, integers in [0, 100), unless ``constraints`` (``edgec.data.constraints``) bound an
    input: indices in [low, high), non-zero divisors."""
    rng = np.random.default_rng(seed)
    out = {}
    for s in specs:
        shape = tuple(d if d else 1 for d in s.shape)
        c = (constraints or {}).get(s.name)
        kind = getattr(c, "kind", None)
        if kind == "index" and c.high is not None and c.high > c.low:
            out[s.name] = rng.integers(c.low, c.high, shape).astype(s.dtype)
        elif s.dtype.startswith("float"):
            out[s.name] = rng.standard_normal(shape).astype(s.dtype)
        elif s.dtype == "bool":
            out[s.name] = rng.integers(0, 2, shape).astype(bool)
        else:
            out[s.name] = rng.integers(1 if kind == "nonzero" else 0, 100, shape).astype(s.dtype)
    return out


# -- onnx -----------------------------------------------------------------------------------------

def load_onnx(path: Path):
    onnx = require("onnx", purpose="reading ONNX")
    try:
        model = onnx.load(str(path))
    except Exception as exc:
        raise _truncated(exc, path, "ONNX") from exc
    if not model.graph.node and not model.graph.output:
        raise InputError("is not an ONNX model (no graph)", where=str(path), hint="re-export the model")
    return model


class UnknownRankSpec(TensorSpec):
    """An ONNX tensor whose graph states no shape at all (not even its rank); shown as ``[]``.
    ``resolve_shapes`` refuses it as an input unless ``--input-shape`` gives it one."""


def _onnx_dtype(t) -> str:
    if t.elem_type in _ONNX_DTYPES:
        return _ONNX_DTYPES[t.elem_type]
    from onnx import TensorProto

    try:
        return TensorProto.DataType.Name(t.elem_type).lower()  # uint32, string, complex64, bfloat16, ...
    except ValueError:
        return f"onnx:{t.elem_type}"


def onnx_io(model) -> tuple[list[TensorSpec], list[TensorSpec]]:
    inits = {i.name for i in model.graph.initializer}

    def spec(v) -> TensorSpec:
        kind = v.type.WhichOneof("value")
        if kind != "tensor_type":  # sequence, map, optional, sparse tensor
            return TensorSpec(v.name, (), f"onnx:{kind or 'untyped'}")
        t = v.type.tensor_type
        if not t.HasField("shape"):
            return UnknownRankSpec(v.name, (), _onnx_dtype(t))
        shape = tuple(d.dim_value if d.HasField("dim_value") else None for d in t.shape.dim)  # 0: an empty dim
        return TensorSpec(v.name, shape, _onnx_dtype(t))

    ins = [spec(v) for v in model.graph.input if v.name not in inits]
    outs = [spec(v) for v in model.graph.output]
    return ins, outs


def check_runtime_versions(model, where: str) -> None:
    """Refuse, before any conversion, an ONNX model whose IR version or opsets onnxruntime (the
    parity ledger's reference) cannot load: a one-node model with the same versions is the probe."""
    ort = require("onnxruntime", purpose="running ONNX")
    from onnx import TensorProto, helper

    g = helper.make_graph([helper.make_node("Identity", ["a"], ["b"])], "probe",
                          [helper.make_tensor_value_info("a", TensorProto.FLOAT, [1])],
                          [helper.make_tensor_value_info("b", TensorProto.FLOAT, [1])])
    std = [o for o in model.opset_import if o.domain in ("", "ai.onnx", "ai.onnx.ml")]  # custom domains: the op scan's
    probe = helper.make_model(g, opset_imports=std, ir_version=model.ir_version)
    from edgec.runtime.onnxruntime import OnnxRuntime

    try:
        OnnxRuntime(probe.SerializeToString(), log_level=4).load().close()
    except Exception as exc:  # onnxruntime raises its own exception types
        text = str(exc).strip().splitlines()[0]
        text = text.rsplit(") ", 1)[-1][:200]  # onnxruntime's reason, after its C++ signature
        opsets = ", ".join(f"{o.domain or 'ai.onnx'} {o.version}" for o in model.opset_import)
        raise UnsupportedModelError(f"onnxruntime {ort.__version__} cannot load this model's versions (IR "
                                    f"{model.ir_version}, opsets {opsets}): {text}", where=where,
                                    hint="re-export with an older opset/IR version (onnx.version_converter)") from None


def resolve_shapes(specs: list[TensorSpec], shapes: dict, dtypes: dict, where: str) -> list[TensorSpec]:
    """Apply --input-shape to specs; a free leading (batch) dim alone becomes 1; raise naming every
    input whose other dims stay dynamic."""
    unknown = sorted(set(shapes) - {s.name for s in specs})
    if unknown:
        raise UsageError(f"--input-shape names unknown input(s) {', '.join(unknown)}", where=where,
                         hint=f"the model's inputs are: {', '.join(s.name for s in specs)}")
    check_input_dtypes(specs, where)
    out, missing, rankless = [], [], []
    for s in specs:
        if isinstance(s, UnknownRankSpec) and s.name not in shapes:
            rankless.append(s.name)
            continue
        if s.name in shapes:
            new = tuple(shapes[s.name])
            if isinstance(s, UnknownRankSpec):
                s = TensorSpec(s.name, (None,) * len(new), s.dtype)
            if len(new) != len(s.shape) or any(d is not None and d != n for d, n in zip(s.shape, new)):
                raise UsageError(f"--input-shape {s.name}={'x'.join(map(str, new))} does not fit the model's "
                                 f"shape {list(s.shape)}", where=where)
            s = TensorSpec(s.name, new, dtypes.get(s.name, s.dtype))
        if not s.is_static and len(s.shape) > 1 and s.shape[0] is None and \
                TensorSpec(s.name, (1, *s.shape[1:]), s.dtype).is_static:
            s = TensorSpec(s.name, (1, *s.shape[1:]), s.dtype)  # a free batch dim alone defaults to 1
        if not s.is_static:
            missing.append(f"{s.name}{list(s.shape)}")
        out.append(s)
    if rankless:
        raise UnsupportedModelError(f"input(s) of unknown rank (the graph states no shape): {', '.join(rankless)}",
                                    where=where, hint="give each a shape with --input-shape NAME=1x3x224x224, or "
                                    "declare it in the graph and re-export")
    if missing:
        raise UnsupportedModelError(f"input(s) with dynamic dims: {', '.join(missing)}", where=where,
                                    hint="fix them with --input-shape NAME=1x3x224x224 (one per input)")
    return out


INPUT_DTYPES = ("float32", "float16", "float64", "int8", "int16", "int32", "int64", "uint8", "bool")


def check_input_dtypes(specs: list[TensorSpec], where: str) -> None:
    """Refuse, in one error naming every one, inputs of a type edgec cannot feed or convert to TFLite
    (uint16/32/64, string, complex, bfloat16, float8, sequences and maps)."""
    bad = [s for s in specs if s.dtype not in INPUT_DTYPES]
    if not bad:
        return
    listing = ", ".join(f"'{s.name}' ({s.dtype.replace('onnx:', '')})" for s in bad)
    strings = any(s.dtype == "string" for s in bad)
    raise UnsupportedModelError(
        f"input(s) of a type edgec cannot feed or convert: {listing}", where=where,
        hint=("move the string processing (tokenizer) out of the model and feed its integer ids; " if strings else "")
        + f"inputs must be one of {', '.join(INPUT_DTYPES)}: cast inside the model (an input of a supported type "
          "followed by a Cast) and re-export")


# -- TF / Keras -----------------------------------------------------------------------------------

def tf_dtype_name(dt) -> str:
    return getattr(dt, "name", str(dt))


def saved_model_io(path: Path):
    tf = require("tensorflow", purpose="reading a SavedModel")
    try:
        loaded = tf.saved_model.load(str(path))
    except Exception as exc:
        raise _truncated(exc, path, "TF SavedModel") from exc
    sigs = getattr(loaded, "signatures", {})
    if "serving_default" not in sigs:
        raise InputError("SavedModel has no 'serving_default' signature", where=str(path),
                         hint="export it with a serving signature (tf.saved_model.save(..., signatures=...))")
    fn = sigs["serving_default"]
    _, kw = fn.structured_input_signature
    ins = [TensorSpec(k, tuple(v.shape.as_list()), tf_dtype_name(v.dtype)) for k, v in sorted(kw.items())]
    outs = [TensorSpec(k, tuple(v.shape.as_list()), tf_dtype_name(v.dtype))
            for k, v in sorted(fn.structured_outputs.items())]
    return loaded, ins, outs


def load_keras(path: Path):
    keras = require("keras", purpose="reading a Keras model")
    try:
        return keras.models.load_model(str(path), compile=False)
    except Exception as exc:
        raise _truncated(exc, path, "Keras model") from exc


def keras_io(model) -> tuple[list[TensorSpec], list[TensorSpec]]:
    def spec(t, i, kind):
        history = getattr(t, "_keras_history", None)
        layer = getattr(history, "operation", None) or getattr(history, "layer", None)
        name = getattr(layer, "name", None) or getattr(t, "name", None) or f"{kind}_{i}"
        return TensorSpec(name.split(":")[0], tuple(t.shape), tf_dtype_name(t.dtype))

    return ([spec(t, i, "input") for i, t in enumerate(model.inputs)],
            [spec(t, i, "output") for i, t in enumerate(model.outputs)])
