"""ONNX -> ONNX canonicalization before conversion: fixed input shapes, constant inputs, folding.

What it does, in order, each step recorded (``rewrite``, ``detail``, ``nodes_before``, ``nodes_after``;
node counts include the nodes of subgraphs):

1. **fixed input shapes** (``--input-shape``): dim_param / unknown dims of the graph inputs become the
   given sizes; a rank or a static dim that conflicts is refused with the input and the graph's shape.
2. **constant inputs** (``--input-value NAME=VALUE``, e.g. ``sr=16000``): the input becomes an
   initializer of the same name and leaves ``graph.input``. Config inputs such as a sample rate gate
   whole branches (``If``); once constant, those branches fold away.
3. **shape inference** (``onnx.shape_inference`` with data propagation).
4. **simplification with constant folding**: onnxsim, else onnxslim, else edgec's own small constant
   folder (``onnx.reference``, small tensors only); every fallback keeps its one-line reason. A result
   that fails ``onnx.checker`` or changes the graph's output names counts as a failure.
5. **If folding**: an ``If`` whose condition is a constant (in its graph or any enclosing one) is
   replaced by the nodes of its taken branch, renamed so nothing collides, writing the ``If``'s own
   output names. onnxsim folds such an ``If`` only in the main graph (its Python API never simplifies
   subgraphs); this step also folds them inside ``Loop``/``Scan``/``If`` bodies and nested branches,
   then the simplifier runs again on what that exposed.

Output names never change; inputs other than the constant ones keep their names and order (an input
a simplifier dropped because it became unused is put back). Models over 2 GiB go through files with
external data for the steps that serialize.
"""

from __future__ import annotations

import collections
import contextlib
import os
import shutil
import tempfile
import uuid
from pathlib import Path

import numpy as np

from edgec.errors import UsageError

_STD_DOMAINS = ("", "ai.onnx")
_LARGE_BYTES = 1 << 30            # initializer bytes above which steps go through files (protobuf: 2 GiB)
_ONNXSIM_MAX_IR = 10              # onnxsim 0.4.36's checker refuses newer IR versions
_FOLD_MAX_ELEMENTS = 1 << 20      # edgec's own constant folder leaves bigger tensors alone
_NO_FOLD_OPS = {"RandomNormal", "RandomNormalLike", "RandomUniform", "RandomUniformLike", "Multinomial",
                "Bernoulli", "If", "Loop", "Scan", "SequenceMap", "Constant"}
_MAX_ROUNDS = 4                   # simplify / fold-If rounds


# -- public API ------------------------------------------------------------------------------------

def canonicalize(model_path: Path, out_path: Path, input_shapes: dict | None = None,
                 input_values: dict | None = None) -> dict:
    """Canonicalize the ONNX at ``model_path`` into ``out_path`` (written atomically); return the record."""
    from edgec.runtime.loaders import load_onnx

    model = load_onnx(Path(model_path))
    model, record = canonicalize_model(model, input_shapes or {}, input_values or {})
    save_atomic(model, Path(out_path))
    return record


def canonicalize_model(model, input_shapes: dict | None = None, input_values: dict | None = None):
    """Canonicalize an onnx ModelProto (a copy; the argument is not changed); return (model, record)."""
    import onnx

    m = onnx.ModelProto()
    m.CopyFrom(model)
    rec = _Record(m)
    outputs = [o.name for o in m.graph.output]
    kept_inputs = _apply_shapes_and_values(m, input_shapes or {}, input_values or {}, rec)
    m = _infer_shapes(m, rec)
    m = _simplify_and_fold(m, rec, outputs, kept_inputs)
    return m, rec.finish(m)


def parse_input_value(text: str, spec) -> tuple[str, np.ndarray]:
    """``NAME=VALUE`` (a scalar or comma-separated list) -> (name, array) with the input's dtype and shape.

    ``spec`` is the input's TensorSpec, or the model's input specs (a list, or a dict by name)."""
    name, sep, raw = text.partition("=")
    name, raw = name.strip(), raw.strip()
    if not sep or not name or not raw:
        raise UsageError(f"--input-value '{text}' is not NAME=VALUE", hint="e.g. --input-value sr=16000 "
                         "or --input-value scale=0.5,0.5")
    s = _pick_spec(name, spec)
    tokens = [t.strip() for t in raw.split(",")]
    return name, _fit_value(name, tokens, s.dtype, s.shape, what=f"--input-value {text}")


def save_atomic(model, out_path: Path) -> None:
    """Write ``model`` to ``out_path`` via a temp dir beside it and ``os.replace``; large models keep
    their weights in ``<name>.data`` beside it (the model's tensors then refer to that file)."""
    import onnx

    out_path.parent.mkdir(parents=True, exist_ok=True)
    tmp = out_path.parent / f".{out_path.name}.tmp-{uuid.uuid4().hex[:8]}"
    tmp.mkdir()
    data = out_path.name + ".data"
    try:
        large = _is_large(model)
        onnx.save(model, str(tmp / out_path.name), save_as_external_data=large, location=data if large else None)
        if (tmp / data).exists():  # onnx keeps tensors under 1 KiB inline even then
            os.replace(tmp / data, out_path.parent / data)
        elif (out_path.parent / data).exists():
            (out_path.parent / data).unlink()  # a stale weights file from an earlier, larger model
        os.replace(tmp / out_path.name, out_path)
    finally:
        shutil.rmtree(tmp, ignore_errors=True)


# -- the record ------------------------------------------------------------------------------------

class _Record:
    def __init__(self, model):
        self.hist_before = op_histogram(model.graph)
        self.rewrites: list[dict] = []
        self.removed_inputs: list[str] = []
        self.fallbacks: list[dict] = []
        self.notes: list[str] = []
        self.simplifier: str | None = None

    def add(self, rewrite: str, detail, before: int, after: int) -> None:
        self.rewrites.append({"rewrite": rewrite, "detail": detail, "nodes_before": before, "nodes_after": after})

    def finish(self, model) -> dict:
        after = op_histogram(model.graph)
        return {"rewrites": self.rewrites, "removed_inputs": self.removed_inputs,
                "simplifier": {"used": self.simplifier, "fallbacks": self.fallbacks},
                "ops_before": self.hist_before, "ops_after": after,
                "nodes_before": sum(self.hist_before.values()), "nodes_after": sum(after.values()),
                "inputs": [i.name for i in model.graph.input if i.name not in _init_names(model.graph)],
                "outputs": [o.name for o in model.graph.output], "notes": self.notes}


def _subgraphs(node):
    for a in node.attribute:
        if a.HasField("g"):
            yield a.g
        yield from a.graphs


def op_histogram(graph, hist: dict | None = None) -> dict[str, int]:
    """{op_type: count} over the graph and all its subgraphs (custom domains as ``domain::op``)."""
    hist = {} if hist is None else hist
    for n in graph.node:
        key = n.op_type if n.domain in _STD_DOMAINS else f"{n.domain}::{n.op_type}"
        hist[key] = hist.get(key, 0) + 1
        for sub in _subgraphs(n):
            op_histogram(sub, hist)
    return dict(sorted(hist.items()))


def count_nodes(graph) -> int:
    return sum(op_histogram(graph).values())


# -- 1, 2: shapes and values -------------------------------------------------------------------------

def _init_names(graph) -> set[str]:
    return {t.name for t in graph.initializer} | {t.values.name for t in graph.sparse_initializer}


def _real_inputs(model) -> dict:
    inits = _init_names(model.graph)
    return {v.name: v for v in model.graph.input if v.name not in inits}


def _graph_shape(v) -> list:
    return [d.dim_value if d.HasField("dim_value") else (d.dim_param or None) for d in v.type.tensor_type.shape.dim]


def _refuse_unknown(names, real: dict, flag: str) -> None:
    unknown = sorted(set(names) - set(real))
    if unknown:
        raise UsageError(f"{flag} names unknown input(s) {', '.join(unknown)}",
                         hint=f"the model's inputs are: {', '.join(real) or '(none)'}")


def _apply_shapes_and_values(model, shapes: dict, values: dict, rec: _Record) -> list[str]:
    """Steps 1 and 2; return the names of the inputs that stay inputs, in order."""
    real = _real_inputs(model)
    _refuse_unknown(shapes, real, "--input-shape")
    _refuse_unknown(values, real, "--input-value")
    n = count_nodes(model.graph)
    if shapes:
        for name, shape in shapes.items():
            _fix_shape(real[name], tuple(int(d) for d in shape))
        rec.add("fixed input shapes", {k: list(map(int, v)) for k, v in shapes.items()}, n, n)
    for name, value in values.items():
        _make_constant(model, real[name], value, rec, n)
    return [k for k in real if k not in values]


def _fix_shape(v, shape: tuple[int, ...]) -> None:
    if not v.type.HasField("tensor_type"):
        raise UsageError(f"--input-shape {v.name}: the input is not a tensor")
    have = _graph_shape(v)
    if v.type.tensor_type.HasField("shape") and (
            len(have) != len(shape) or any(isinstance(d, int) and d > 0 and d != s for d, s in zip(have, shape))):
        raise UsageError(f"--input-shape {v.name}={'x'.join(map(str, shape))} does not fit the model's shape "
                         f"{have} for input '{v.name}'", hint="give one size per dim; static dims must match")
    if any(s <= 0 for s in shape):
        raise UsageError(f"--input-shape {v.name}={'x'.join(map(str, shape))}: dims must be positive")
    tshape = v.type.tensor_type.shape
    tshape.ClearField("dim")
    for s in shape:
        tshape.dim.add().dim_value = s


def _make_constant(model, v, value, rec: _Record, n: int) -> None:
    from onnx import helper, numpy_helper

    elem = v.type.tensor_type.elem_type
    try:
        dtype = np.dtype(helper.tensor_dtype_to_np_dtype(elem)).name
    except Exception:
        raise UsageError(f"--input-value {v.name}: inputs of ONNX type {elem} cannot be given a value") from None
    arr = value if isinstance(value, np.ndarray) else np.asarray(value)
    tokens = arr.ravel().tolist()
    arr = _fit_value(v.name, tokens, dtype, tuple(d if isinstance(d, int) and d > 0 else None
                                                   for d in _graph_shape(v)), what=f"--input-value {v.name}",
                     given_shape=arr.shape)
    model.graph.input.remove(v)
    model.graph.initializer.append(numpy_helper.from_array(arr, v.name))
    rec.removed_inputs.append(v.name)
    shown = arr.item() if arr.size == 1 else arr.ravel().tolist()[:8]
    rec.add(f"constant input {v.name}={shown}", {"input": v.name, "dtype": dtype, "shape": list(arr.shape)}, n, n)


def _pick_spec(name: str, spec):
    if hasattr(spec, "dtype") and hasattr(spec, "shape"):
        if getattr(spec, "name", name) != name:
            raise UsageError(f"--input-value names '{name}' but the input is '{spec.name}'")
        return spec
    specs = dict(spec) if isinstance(spec, dict) else {s.name: s for s in spec}
    if name not in specs:
        raise UsageError(f"--input-value names unknown input '{name}'",
                         hint=f"the model's inputs are: {', '.join(specs) or '(none)'}")
    return specs[name]


def _parse_token(tok, dtype: np.dtype, where: str, desc: str):
    if not isinstance(tok, str):
        return tok
    low = tok.lower()
    if dtype.kind == "b" and low in ("true", "false"):
        return low == "true"
    try:
        return int(tok)
    except ValueError:
        pass
    try:
        return float(tok)
    except ValueError:
        raise UsageError(f"{where}: '{tok}' is not a number ({desc})") from None


def _fit_value(name: str, tokens: list, dtype, shape: tuple, *, what: str, given_shape=None) -> np.ndarray:
    """Values (strings or numbers) -> an array of ``dtype`` fitting ``shape`` (None: a free dim)."""
    dt = np.dtype(str(dtype))
    desc = f"input '{name}' is {dt.name} with shape {list(shape)}"
    vals = [_parse_token(t, dt, what, desc) for t in tokens]
    for v in vals:
        _check_fits(v, dt, what, desc)
    out_shape = _fit_shape(len(vals), shape, given_shape, what, desc)
    return np.asarray(vals, dtype=dt).reshape(out_shape)


def _check_fits(v, dt: np.dtype, what: str, desc: str) -> None:
    if isinstance(v, (str, bytes)) or not isinstance(v, (bool, int, float, np.generic)):
        raise UsageError(f"{what}: {v!r} is not a number ({desc})")
    if dt.kind == "b":
        if v not in (0, 1, True, False):
            raise UsageError(f"{what}: {v!r} is not a boolean ({desc})", hint="use true/false or 1/0")
    elif dt.kind in "iu":
        if not np.isfinite(float(v)) or float(v) != int(v):
            raise UsageError(f"{what}: {v!r} is not an integer ({desc})")
        info = np.iinfo(dt)
        if not info.min <= int(v) <= info.max:
            raise UsageError(f"{what}: {v!r} is out of range for {dt.name} [{info.min}, {info.max}] ({desc})")
    elif dt.kind != "f":
        raise UsageError(f"{what}: inputs of type {dt.name} cannot be given a value ({desc})")


def _fit_shape(count: int, shape: tuple, given_shape, what: str, desc: str) -> tuple:
    free = [i for i, d in enumerate(shape) if d is None]
    known = int(np.prod([d for d in shape if d is not None])) if shape else 1
    if given_shape is not None and len(given_shape) == len(shape) and all(
            d is None or d == g for d, g in zip(shape, given_shape)):
        return tuple(given_shape)
    if not free:
        if count != known:
            raise UsageError(f"{what}: {count} value(s) given but the input needs {known} ({desc})")
        return tuple(shape)
    if len(free) > 1 or count % max(known, 1):
        raise UsageError(f"{what}: {count} value(s) do not fit ({desc})",
                         hint="fix its shape with --input-shape first" if len(free) > 1 else None)
    return tuple(count // known if d is None else d for d in shape)


# -- 3: shape inference --------------------------------------------------------------------------------

def _is_large(model) -> bool:
    return sum(t.ByteSize() for t in model.graph.initializer) > _LARGE_BYTES  # raw_data or typed fields


def _infer_shapes(model, rec: _Record):
    import onnx

    try:
        if not _is_large(model):
            return onnx.shape_inference.infer_shapes(model, data_prop=True)
        with _as_file(model, "in") as src:
            onnx.shape_inference.infer_shapes_path(str(src), str(src.with_name("out.onnx")), data_prop=True)
            return onnx.load(str(src.with_name("out.onnx")))
    except Exception as exc:
        rec.notes.append(f"shape inference failed, continuing without it: {_reason(exc)}")
        return model


@contextlib.contextmanager
def _as_file(model, stem: str):
    """``model`` saved in a temp dir with its weights in a file beside it (protobuf cannot hold 2 GiB);
    saving moves the weights out of the proto, so they are read back in afterwards."""
    import onnx
    from onnx.external_data_helper import load_external_data_for_model

    with tempfile.TemporaryDirectory(prefix="edgec-canon-") as d:
        path = Path(d) / f"{stem}.onnx"
        onnx.save(model, str(path), save_as_external_data=True, location=f"{stem}.onnx.data")
        try:
            yield path
        finally:
            load_external_data_for_model(model, d)


def _reason(exc: BaseException) -> str:
    text = (str(exc).strip().splitlines() or [""])[0][:240]
    return f"{type(exc).__name__}: {text}" if text else type(exc).__name__


def _check(model) -> None:
    import onnx

    if not _is_large(model):
        onnx.checker.check_model(model)
        return
    with _as_file(model, "m") as path:
        onnx.checker.check_model(str(path))


# -- 4: simplifiers ------------------------------------------------------------------------------------

def _run_onnxsim(model):
    import onnx
    from onnxsim import simplify

    m, ir = model, model.ir_version  # already the caller's private copy
    need = onnx.helper.find_min_ir_version_for(list(m.opset_import), ignore_unknown=True)
    if ir > _ONNXSIM_MAX_IR >= need:
        m.ir_version = _ONNXSIM_MAX_IR  # the opsets need no newer IR; the original is restored below
    out, ok = simplify(m)
    if not ok:
        raise RuntimeError("onnxsim reported a failed check")
    out.ir_version = max(out.ir_version, ir)
    return out


def _run_onnxslim(model):
    import onnxslim

    return onnxslim.slim(model)


def _run_edgec_folder(model):
    _fold_constants_graph(model.graph, collections.ChainMap(), _opset(model), _static_shapes(model.graph))
    _drop_dead(model.graph)
    return model


def _tool_version(name: str) -> str:
    from importlib.metadata import PackageNotFoundError, version

    try:
        return f"{name} {version(name)}"
    except PackageNotFoundError:
        return name


SIMPLIFIERS = (("onnxsim", _run_onnxsim), ("onnxslim", _run_onnxslim), ("edgec-fold", _run_edgec_folder))


def _simplify(model, rec: _Record, outputs: list[str], inputs: list[str], only: str | None = None):
    """Run the first simplifier that works (``only``: that one); return (model, its name or None)."""
    import onnx

    for name, fn in SIMPLIFIERS:
        if only and name != only or any(f["tool"] == name for f in rec.fallbacks):
            continue
        before = count_nodes(model.graph)
        try:
            work = onnx.ModelProto()
            work.CopyFrom(model)
            out = _keep_io(fn(work), model, outputs, inputs)
            _check(out)
        except Exception as exc:  # any failure of a third-party simplifier: fall back, say why
            rec.fallbacks.append({"tool": name, "reason": _reason(exc)})
            continue
        rec.add(name, _tool_version(name) if name != "edgec-fold" else "edgec constant folding (onnx.reference)",
                before, count_nodes(out.graph))
        return out, name
    return model, None


def _keep_io(out, orig, outputs: list[str], inputs: list[str]):
    """Refuse a result whose outputs changed; put back inputs a simplifier dropped, in their order."""
    if [o.name for o in out.graph.output] != outputs:
        raise RuntimeError(f"output names changed to {[o.name for o in out.graph.output]}")
    have = _real_inputs(out)
    extra = sorted(set(have) - set(inputs))
    if extra:
        raise RuntimeError(f"new inputs appeared: {extra}")
    if list(have) != inputs:
        by_name = {**_real_inputs(orig), **have}
        inits = [v for v in out.graph.input if v.name not in have]
        out.graph.ClearField("input")
        out.graph.input.extend([by_name[n] for n in inputs] + inits)
    return out


def _simplify_and_fold(model, rec: _Record, outputs: list[str], inputs: list[str]):
    model, tool = _simplify(model, rec, outputs, inputs)
    rec.simplifier = tool
    for _ in range(_MAX_ROUNDS):
        before = count_nodes(model.graph)
        work = _copy(model, type(model))
        folded = fold_constant_ifs(work)
        if not folded:
            break
        try:
            _check(work)
        except Exception as exc:  # a bug of this pass: keep the unfolded model, say why
            rec.notes.append(f"If folding at {', '.join(folded[:3])} gave an invalid model, not applied: "
                             f"{_reason(exc)}")
            break
        model = work
        shown = ", ".join(folded[:3]) + (f" and {len(folded) - 3} more" if len(folded) > 3 else "")
        rec.add(f"If folded at {shown}", {"nodes": folded}, before, count_nodes(model.graph))
        if tool is not None:
            model, _ = _simplify(model, rec, outputs, inputs, only=tool)
    dropped = [n for n in inputs if not _used(model.graph, n)]
    if dropped:
        rec.notes.append(f"input(s) no longer used after folding, kept as inputs: {', '.join(dropped)}")
    return model


def _used(graph, name: str) -> bool:
    return any(name in n.input or any(_used(s, name) for s in _subgraphs(n)) for n in graph.node) or \
        name in {o.name for o in graph.output}


# -- 5: If folding -------------------------------------------------------------------------------------

def _constant_value(node):
    from onnx import helper, numpy_helper

    if node.op_type != "Constant" or node.domain not in _STD_DOMAINS or not node.attribute:
        return None
    a = node.attribute[0]
    if a.name == "value":
        return numpy_helper.to_array(a.t)
    if a.name in ("value_int", "value_ints", "value_float", "value_floats"):
        v = helper.get_attribute_value(a)
        return np.asarray(v, dtype=np.int64 if "int" in a.name else np.float32)
    return None


def _graph_constants(graph) -> dict:
    """Small initializers that are not also inputs (an input's initializer is only its default)."""
    from onnx import numpy_helper

    inputs = {v.name for v in getattr(graph, "input", ())}
    return {t.name: numpy_helper.to_array(t) for t in graph.initializer
            if t.name not in inputs and t.data_location != 1 and _numel(t.dims) <= _FOLD_MAX_ELEMENTS}


def _numel(dims) -> int:
    return int(np.prod(list(dims))) if len(dims) else 1


def _all_names(graph, out: set[str]) -> set[str]:
    out.update(v.name for v in list(graph.input) + list(graph.output) + list(graph.value_info))
    out.update(_init_names(graph))
    for n in graph.node:
        out.add(n.name)
        out.update(n.input)
        out.update(n.output)
        for s in _subgraphs(n):
            _all_names(s, out)
    return out


def fold_constant_ifs(model) -> list[str]:
    """Replace every ``If`` with a constant condition by its taken branch, in place, at any depth;
    return the folded nodes' names (``outer/inner`` for nested graphs)."""
    folded: list[str] = []
    _fold_ifs(model.graph, collections.ChainMap(), _all_names(model.graph, set()), folded, "")
    return folded


def _fold_ifs(graph, scope, taken: set[str], folded: list, prefix: str) -> None:
    from onnx import NodeProto

    consts = scope.new_child(_graph_constants(graph))
    work, out, changed = list(graph.node), [], False
    while work:
        node = work.pop(0)
        cond = consts.get(node.input[0]) if node.op_type == "If" and node.domain in _STD_DOMAINS else None
        if cond is not None and cond.size == 1:
            label = node.name or node.output[0]
            branch = _attr_graph(node, "then_branch" if bool(cond.ravel()[0]) else "else_branch")
            nodes, inits = _inline(branch, node, taken, label)
            graph.initializer.extend(inits)
            consts.maps[0].update(_graph_constants(_Holder(inits)))
            work[0:0] = nodes
            folded.append(prefix + label)
            changed = True
            continue
        for sub in _subgraphs(node):
            _fold_ifs(sub, consts, taken, folded, f"{prefix}{node.name or node.op_type}/")
        value = _constant_value(node)
        if value is not None:
            consts.maps[0][node.output[0]] = value
        out.append(node)
    if changed:
        out = [_copy(n, NodeProto) for n in out]  # detached: the repeated field is cleared next
        graph.ClearField("node")
        graph.node.extend(out)
        _drop_value_info(graph)


class _Holder:
    def __init__(self, inits):
        self.initializer = inits


def _copy(msg, cls):
    c = cls()
    c.CopyFrom(msg)
    return c


def _attr_graph(node, name: str):
    return next(a.g for a in node.attribute if a.name == name)


def _drop_value_info(graph) -> None:
    """Shapes recorded for names that no node writes any more would be stale; inference recomputes."""
    written = {o for n in graph.node for o in n.output}
    keep = [v for v in graph.value_info if v.name in written]
    graph.ClearField("value_info")
    graph.value_info.extend(keep)


def _fresh(base: str, taken: set[str]) -> str:
    name, i = base, 0
    while name in taken:
        i += 1
        name = f"{base}_{i}"
    taken.add(name)
    return name


def _inline(branch, node, taken: set[str], label: str):
    """The branch's nodes and initializers, renamed into the parent graph; they write ``node``'s outputs."""
    from onnx import NodeProto, TensorProto, helper

    produced = [o for n in branch.node for o in n.output if o]
    local = produced + [t.name for t in branch.initializer]
    rename, identities = {}, []
    for src, dst in zip([o.name for o in branch.output], node.output):
        if dst and src in produced and src not in rename:
            rename[src] = dst
    for name in local:
        if name not in rename:
            rename[name] = _fresh(f"{label}/{name}", taken)
    for src, dst in zip([o.name for o in branch.output], node.output):
        if dst and rename.get(src) != dst:
            identities.append(helper.make_node("Identity", [rename.get(src, src)], [dst],
                                               name=_fresh(f"{label}/{dst}__out", taken)))
    nodes = []
    for n in branch.node:
        c = _copy(n, NodeProto)
        c.name = _fresh(f"{label}/{n.name or n.op_type}", taken)
        _rename_node(c, rename)
        nodes.append(c)
    inits = []
    for t in branch.initializer:
        c = _copy(t, TensorProto)
        c.name = rename[t.name]
        inits.append(c)
    return nodes + identities, inits


def _rename_node(node, rename: dict) -> None:
    for i, x in enumerate(node.input):
        node.input[i] = rename.get(x, x)
    for i, x in enumerate(node.output):
        node.output[i] = rename.get(x, x)
    for sub in _subgraphs(node):
        _rename_outer_refs(sub, rename)


def _rename_outer_refs(graph, rename: dict) -> None:
    """Rename references a nested graph makes to the enclosing scope (its own names shadow)."""
    own = {v.name for v in graph.input} | _init_names(graph) | {o for n in graph.node for o in n.output}
    visible = {k: v for k, v in rename.items() if k not in own}
    if not visible:
        return
    for n in graph.node:
        for i, x in enumerate(n.input):
            n.input[i] = visible.get(x, x)
        for sub in _subgraphs(n):
            _rename_outer_refs(sub, visible)
    for o in graph.output:  # a subgraph output may be an outer name directly
        o.name = visible.get(o.name, o.name)


# -- edgec's own constant folder (the last fallback) -------------------------------------------------

def _opset(model) -> int:
    return next((o.version for o in model.opset_import if o.domain in _STD_DOMAINS), 0)


def _static_shapes(graph) -> dict[str, tuple[int, ...]]:
    out = {}
    for v in list(graph.value_info) + list(graph.input) + list(graph.output):
        shape = _graph_shape(v)
        if v.type.tensor_type.HasField("shape") and all(isinstance(d, int) and d > 0 for d in shape):
            out[v.name] = tuple(shape)
    return out


def _fold_constants_graph(graph, scope, opset: int, shapes: dict) -> None:
    consts = scope.new_child(_graph_constants(graph))
    keep, new_inits = [], []
    for node in graph.node:
        for sub in _subgraphs(node):
            _fold_constants_graph(sub, consts, opset, {**shapes, **_static_shapes(sub)})
        value = _constant_value(node)
        if value is not None:
            consts.maps[0][node.output[0]] = value
        outs = None if value is not None else _evaluate(node, consts, opset, shapes)
        if outs is None:
            keep.append(node)
            continue
        for name, arr in zip(node.output, outs):
            consts.maps[0][name] = arr
            new_inits.append((name, arr))
    if new_inits:
        _replace_folded(graph, keep, new_inits)


def _replace_folded(graph, keep: list, new_inits: list) -> None:
    from onnx import NodeProto, numpy_helper

    kept = [_copy(n, NodeProto) for n in keep]
    graph.ClearField("node")
    graph.node.extend(kept)
    graph.initializer.extend(numpy_helper.from_array(np.asarray(a), n) for n, a in new_inits if n)
    used = {x for n in graph.node for x in n.input} | {o.name for o in graph.output} | _outer_refs(graph)
    keep_inits = [t for t in graph.initializer if t.name in used]
    graph.ClearField("initializer")
    graph.initializer.extend(keep_inits)
    _drop_value_info(graph)


def _drop_dead(graph) -> None:
    """Remove nodes whose outputs nothing reads (here, in a nested graph, or as a graph output)."""
    from onnx import NodeProto

    for n in graph.node:
        for sub in _subgraphs(n):
            _drop_dead(sub)
    used = {o.name for o in graph.output} | _outer_refs(graph)
    keep = []
    for n in reversed(list(graph.node)):
        if any(o in used for o in n.output if o):
            keep.append(n)
            used.update(n.input)
    if len(keep) < len(graph.node):
        kept = [_copy(n, NodeProto) for n in reversed(keep)]
        graph.ClearField("node")
        graph.node.extend(kept)


def _outer_refs(graph) -> set[str]:
    refs = set()
    for n in graph.node:
        for sub in _subgraphs(n):
            refs |= {x for m in sub.node for x in m.input} | {o.name for o in sub.output} | _outer_refs(sub)
    return refs


def _evaluate(node, consts, opset: int, shapes: dict):
    """The node's outputs if it can be computed now (all inputs constant, or Shape/Size of a static
    tensor), else None."""
    if node.domain not in _STD_DOMAINS or node.op_type in _NO_FOLD_OPS or not node.output:
        return None
    if node.op_type in ("Shape", "Size") and node.input[0] in shapes:
        return [_shape_value(node, shapes[node.input[0]])]
    ins = [x for x in node.input if x]
    if not all(x in consts for x in ins) or sum(consts[x].size for x in ins) > _FOLD_MAX_ELEMENTS:
        return None
    from onnx.reference import ReferenceEvaluator

    try:
        outs = ReferenceEvaluator(node, opsets={"": opset}).run(None, {x: consts[x] for x in ins})
    except Exception:
        return None
    if any(not isinstance(o, np.ndarray) or o.size > _FOLD_MAX_ELEMENTS for o in outs):
        return None
    return outs


def _shape_value(node, shape: tuple[int, ...]) -> np.ndarray:
    from onnx import helper

    if node.op_type == "Size":
        return np.asarray(int(np.prod(shape)), dtype=np.int64)
    attrs = {a.name: helper.get_attribute_value(a) for a in node.attribute}
    start, end = attrs.get("start", 0), attrs.get("end", len(shape))
    return np.asarray(shape[start:end], dtype=np.int64)


# -- the build step --------------------------------------------------------------------------------

def _step(ctx) -> dict:
    """The pipeline's canonicalization step: ``ctx.settings`` holds the resolved input shapes
    (``canonical_shapes``) and the constant inputs as text (``input_values``)."""
    from edgec.runtime.loaders import load_onnx, onnx_io

    specs = onnx_io(load_onnx(Path(ctx.input)))[0]
    values = dict(parse_input_value(f"{k}={v}", specs) for k, v in (ctx.settings.get("input_values") or {}).items())
    shapes = {k: tuple(v) for k, v in (ctx.settings.get("canonical_shapes") or {}).items()}
    record = canonicalize(Path(ctx.input), Path(ctx.output), shapes, values)
    return {"canonicalization": record}


def build_step():
    """The step as a converter-shaped object (an ONNX -> ONNX pass; not an edge of the graph)."""
    from edgec.convert import Converter
    from edgec.formats import Format

    return Converter(name="onnx_canonicalize", src=Format.ONNX, dst=Format.ONNX, run=_step,
                     tools=("onnx", "onnxsim", "onnxslim"), uses=("canonical_shapes", "input_values"),
                     description="fixed shapes, constant inputs, shape inference, onnxsim/onnxslim, If folding")
