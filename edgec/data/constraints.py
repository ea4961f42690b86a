"""Value constraints on an ONNX model's inputs, read from the graph, so that synthetic data is valid
for it: an input that reaches the indices of a Gather/Scatter (directly, or through ops that keep
its values: Cast, Identity, Unsqueeze, Reshape, Squeeze, Flatten, Expand, Transpose) is drawn in
[0, dim) of the indexed axis; one that reaches the divisor of an integer Div/Mod is drawn non-zero;
one that feeds a shape-like config (OneHot depth, TopK k, Range, a Reshape shape, ...) is left as
drawn and recorded. Random indices otherwise make onnxruntime raise, and a zero integer divisor
kills it with SIGFPE.
"""

from __future__ import annotations

from dataclasses import dataclass

_PASS = {"Cast", "Identity", "Unsqueeze", "Reshape", "Squeeze", "Flatten", "Expand", "Transpose"}
_INT_TYPES = {2, 3, 4, 5, 6, 7, 12, 13}   # onnx uint8, int8, uint16, int16, int32, int64, uint32, uint64
# op -> input positions that are shape-like configuration, not data
_CONFIG = {"OneHot": (1,), "TopK": (1,), "Range": (0, 1, 2), "Reshape": (1,), "Expand": (1,), "Tile": (1,),
           "ConstantOfShape": (0,), "Slice": (1, 2, 3, 4), "Resize": (2, 3), "Pad": (1,), "Split": (1,),
           "Squeeze": (1,), "Unsqueeze": (1,), "ReduceSum": (1,), "ReduceMean": (1,), "ReduceMax": (1,)}


@dataclass(frozen=True)
class Constraint:
    """``index``: integers in [low, high); ``nonzero``: no zero values; ``config``: left as drawn."""

    kind: str
    low: int = 0
    high: int | None = None
    why: str = ""

    def describe(self, name: str) -> str:
        if self.kind == "index":
            return f"{name}: [{self.low}, {self.high}) {self.why}"
        if self.kind == "nonzero":
            return f"{name}: non-zero {self.why}"
        return f"{name}: left as drawn ({self.why})"

    def merge(self, other: "Constraint") -> "Constraint":
        if self.kind == "config":
            return other
        if other.kind == "config":
            return self
        low = max(self.low, other.low, 1 if "nonzero" in (self.kind, other.kind) else 0)
        highs = [h for h in (self.high, other.high) if h is not None]
        kind = "index" if highs else "nonzero"
        return Constraint(kind, low, min(highs) if highs else None, "; ".join(w for w in (self.why, other.why) if w))


def input_constraints(model) -> dict[str, Constraint]:
    """{graph input name: its constraint} for the inputs whose values the graph constrains."""
    graph = _inferred(model).graph
    inits = {i.name for i in graph.initializer}
    inputs = [i.name for i in graph.input if i.name not in inits]
    shapes, types = _shapes_and_types(graph)
    origin = _origins(graph, set(inputs))
    consts, out = _constants(graph), {}
    for node in graph.node:
        for pos, c in _node_constraints(node, shapes, types, consts):
            src = origin.get(node.input[pos]) if pos < len(node.input) else None
            if src is not None:
                out[src] = out[src].merge(c) if src in out else c
    return out


def _inferred(model):
    import onnx

    try:
        return onnx.shape_inference.infer_shapes(model)
    except Exception:  # shapes from initializers and declared value_info only
        return model


def _shapes_and_types(graph) -> tuple[dict[str, tuple], dict[str, int]]:
    shapes, types = {}, {}
    for i in graph.initializer:
        shapes[i.name], types[i.name] = tuple(int(d) for d in i.dims), i.data_type
    for v in list(graph.input) + list(graph.value_info) + list(graph.output):
        t = v.type.tensor_type
        types.setdefault(v.name, t.elem_type)
        if t.HasField("shape"):
            shapes.setdefault(v.name, tuple(d.dim_value if d.HasField("dim_value") else None for d in t.shape.dim))
    return shapes, types


def _constants(graph) -> dict[str, list]:
    """Small integer constants (initializers and Constant nodes), for OneHot's depth."""
    from onnx import numpy_helper

    out = {i.name: numpy_helper.to_array(i).ravel().tolist() for i in graph.initializer if _small(i.dims)}
    for n in graph.node:
        if n.op_type == "Constant" and n.attribute and n.attribute[0].name == "value":
            t = n.attribute[0].t
            if _small(t.dims):
                out[n.output[0]] = numpy_helper.to_array(t).ravel().tolist()
    return out


def _small(dims) -> bool:
    size = 1
    for d in dims:
        size *= int(d)
    return size <= 8


def _origins(graph, inputs: set[str]) -> dict[str, str]:
    """Tensor -> the graph input whose values it carries unchanged (through _PASS ops)."""
    origin = {n: n for n in inputs}
    for node in graph.node:
        if node.op_type in _PASS and node.input and node.input[0] in origin:
            for o in node.output:
                origin[o] = origin[node.input[0]]
    return origin


def _attr(node, name: str, default):
    from onnx import helper

    for a in node.attribute:
        if a.name == name:
            return helper.get_attribute_value(a)
    return default


def _axis_dim(shape: tuple | None, axis: int) -> int | None:
    if not shape or not -len(shape) <= axis < len(shape):
        return None
    d = shape[axis]
    return d if isinstance(d, int) and d > 0 else None


def _index(node, data: str, dim: int | None, what: str) -> list[tuple[int, Constraint]]:
    if dim is None:
        return []
    return [(1, Constraint("index", 0, dim, f"from {node.op_type} {what} at node {node.name or node.output[0]}"))]


def _nd_dim(shape: tuple | None, batch: int) -> int | None:
    """The smallest indexed dim of a GatherND/ScatterND data tensor: a safe bound for every index."""
    dims = [d for d in (shape or ())[batch:] if isinstance(d, int) and d > 0]
    return min(dims) if dims and len(dims) == len(shape or ()) - batch else None


def _node_constraints(node, shapes: dict, types: dict, consts: dict) -> list[tuple[int, Constraint]]:
    op, ins = node.op_type, list(node.input)
    if op in ("Gather", "GatherElements", "ScatterElements") and len(ins) >= 2:
        axis = int(_attr(node, "axis", 0))
        return _index(node, ins[0], _axis_dim(shapes.get(ins[0]), axis), f"data axis {axis}")
    if op in ("GatherND", "ScatterND") and len(ins) >= 2:
        batch = int(_attr(node, "batch_dims", 0))
        return _index(node, ins[0], _nd_dim(shapes.get(ins[0]), batch), "data (smallest indexed dim)")
    if op == "OneHot" and len(ins) >= 2:
        depth = consts.get(ins[1])
        where = f"at node {node.name or node.output[0]}"
        found = [(0, Constraint("index", 0, int(depth[0]), f"from OneHot depth {where}"))] if depth else []
        return found + [(1, Constraint("config", why=f"OneHot depth {where}"))]
    if op in ("Div", "Mod") and len(ins) == 2 and types.get(ins[1]) in _INT_TYPES:
        return [(1, Constraint("nonzero", 1, None, f"integer divisor of {op} at node {node.name or node.output[0]}"))]
    return [(pos, Constraint("config", why=f"a shape-like input of {op} at node {node.name or node.output[0]}"))
            for pos in _CONFIG.get(op, ()) if pos < len(ins) and ins[pos]]


def describe(constraints: dict[str, Constraint]) -> list[str]:
    return [c.describe(name) for name, c in sorted(constraints.items())]
