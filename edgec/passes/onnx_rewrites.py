"""ONNX -> ONNX rewrites that turn ops onnx2tf mishandles into equivalent ops it converts.

Each rewrite replaces one node by a few standard ops that compute the same thing, keeping the
node's output name, so the graph's I/O and every other node stay as they were. The rewrites are
general (they match op types, not models) and run on edgec's private copy of the ONNX just before
onnx2tf; which ones ran is recorded in the step's metadata.

- ``ReduceL2`` -> ``Sqrt(ReduceSumSquare)``: onnx2tf 1.29's ReduceL2 checks its axes with
  ``tf.norm``, which refuses the numpy integer axes of the opset-18 form (``'axis' must be None, an
  integer, or a tuple of 2 unique integers, got 1``). ``F.normalize`` and
  ``torch.linalg.vector_norm`` export to ReduceL2. ReduceSumSquare has ReduceL2's schema in every
  opset (axes attribute before 18, axes input from 18 on), so inputs and attributes carry over.
- ``ReduceL1`` -> ``ReduceSum(Abs)``: the same ``tf.norm`` check, and onnx2tf's ReduceL1 also fails
  when no axes are given. ReduceSum took its axes as an input from opset 13 on, five opsets before
  ReduceL1 did, so between 13 and 17 the axes attribute becomes an int64 initializer.
- ``Slice`` over several constant axes -> one ``Slice`` per axis, whole-axis parts (start 0, step 1,
  end past 2**31-1) dropped: on a tensor onnx2tf made channels-last it converts the axes but leaves
  starts/ends in ONNX order, so ``x[:, 129:]`` exported over axes [0, 1, 2] slices the wrong axis
  (an empty tensor; silero-vad's STFT). Slices on different axes commute, so values are exact.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Callable

_STD_DOMAINS = ("", "ai.onnx")


@dataclass(frozen=True)
class Rewrite:
    name: str                           # what the manifest records, e.g. "ReduceL2->Sqrt(ReduceSumSquare)"
    op_type: str                        # the standard-domain op it replaces
    replace: Callable[["_Graph", object], list | None]  # (graph, node) -> its replacement, None: keep it


class _Graph:
    """One (sub)graph being rewritten: fresh names and new initializers."""

    def __init__(self, graph, opset: int, taken: set[str]):
        self.graph, self.opset, self.taken = graph, opset, taken
        self.value_info = {v.name: v for v in list(graph.value_info) + list(graph.input) + list(graph.output)}

    def fresh(self, base: str) -> str:
        name, i = base, 0
        while name in self.taken:
            i += 1
            name = f"{base}_{i}"
        self.taken.add(name)
        return name

    def like(self, new_name: str, old_name: str) -> None:
        """Give ``new_name`` the type and shape recorded for ``old_name``, if any."""
        v = self.value_info.get(old_name)
        if v is not None and v.type.tensor_type.HasField("shape"):
            copy = self.graph.value_info.add()
            copy.CopyFrom(v)
            copy.name = new_name

    def constant(self, name: str):
        """The value of ``name`` as a list if an initializer or Constant node of this graph holds it."""
        from onnx import numpy_helper

        for t in self.graph.initializer:
            if t.name == name:
                return numpy_helper.to_array(t).ravel().tolist()
        for n in self.graph.node:
            if n.op_type == "Constant" and n.output[0] == name:
                v = next((a for a in n.attribute if a.name in ("value", "value_ints")), None)
                if v is not None:
                    return numpy_helper.to_array(v.t).ravel().tolist() if v.name == "value" else list(v.ints)
        return None

    def int64_initializer(self, base: str, values) -> str:
        import numpy as np
        from onnx import numpy_helper

        name = self.fresh(base)
        self.graph.initializer.append(numpy_helper.from_array(np.asarray(values, dtype=np.int64), name))
        return name


def _attrs(node) -> dict:
    from onnx import helper

    return {a.name: helper.get_attribute_value(a) for a in node.attribute}


def _static_axes(g: _Graph, node):
    """The node's axes: a list, [] when absent or empty, None when they are computed at run time."""
    attrs = _attrs(node)
    if "axes" in attrs:
        return list(attrs["axes"])
    if len(node.input) < 2 or not node.input[1]:
        return []
    return g.constant(node.input[1])


def _noop_case(g: _Graph, node) -> str:
    """With ``noop_with_empty_axes=1`` and no axes a Reduce op returns its input unchanged, which a
    sum of squares or of absolute values would not: "identity" then, "unknown" when the axes are
    computed at run time, else "reduce"."""
    if not _attrs(node).get("noop_with_empty_axes", 0):
        return "reduce"
    axes = _static_axes(g, node)
    return "unknown" if axes is None else "reduce" if axes else "identity"


def _identity(g: _Graph, node) -> list:
    from onnx import helper

    return [helper.make_node("Identity", [node.input[0]], list(node.output),
                             name=g.fresh(f"{node.name or node.output[0]}__noop"))]


def _reduce_l2(g: _Graph, node):
    from onnx import helper

    case = _noop_case(g, node)
    if case != "reduce":
        return _identity(g, node) if case == "identity" else None
    base = node.name or node.output[0]
    sq = g.fresh(f"{node.output[0]}__sumsq")
    g.like(sq, node.output[0])  # same shape and dtype as the norm itself
    return [helper.make_node("ReduceSumSquare", list(node.input), [sq], name=g.fresh(f"{base}__sumsq"),
                             **_attrs(node)),
            helper.make_node("Sqrt", [sq], list(node.output), name=g.fresh(f"{base}__sqrt"))]


def _reduce_l1(g: _Graph, node):
    from onnx import helper

    case = _noop_case(g, node)
    if case != "reduce":
        return _identity(g, node) if case == "identity" else None
    base = node.name or node.output[0]
    ab = g.fresh(f"{node.output[0]}__abs")
    g.like(ab, node.input[0])
    attrs = _attrs(node)
    inputs = [ab, *node.input[1:]]
    if 13 <= g.opset < 18 and "axes" in attrs:  # ReduceSum-13 takes axes as an input
        inputs = [ab, g.int64_initializer(f"{node.output[0]}__axes", attrs.pop("axes"))]
    return [helper.make_node("Abs", [node.input[0]], [ab], name=g.fresh(f"{base}__abs")),
            helper.make_node("ReduceSum", inputs, list(node.output), name=g.fresh(f"{base}__sum"), **attrs)]


_NOOP_END = 2**31 - 1  # an end at or past this keeps a whole axis whatever its size


def _slice_axes(g: _Graph, node):
    """[(axis, start, end, step)] for a Slice (opset >= 10) whose starts/ends/axes/steps are all
    constants; None when any is computed at run time."""
    ins = list(node.input) + [""] * (5 - len(node.input))
    starts, ends = g.constant(ins[1]), g.constant(ins[2])
    if starts is None or ends is None or len(starts) != len(ends):
        return None
    axes = g.constant(ins[3]) if ins[3] else list(range(len(starts)))
    steps = g.constant(ins[4]) if ins[4] else [1] * len(starts)
    if axes is None or steps is None or not (len(axes) == len(steps) == len(starts)):
        return None
    return [tuple(int(v) for v in t) for t in zip(axes, starts, ends, steps)]


def _slice(g: _Graph, node):
    from onnx import helper

    if g.opset < 10 or _attrs(node):
        return None
    parts = _slice_axes(g, node)
    if parts is None:
        return None
    kept = [p for p in parts if not (p[1] == 0 and p[3] == 1 and p[2] >= _NOOP_END)]
    if len(kept) == len(parts) and len(parts) <= 1:
        return None  # already one axis: onnx2tf handles it
    if not kept:
        return _identity(g, node)
    base = node.name or node.output[0]
    nodes, src = [], node.input[0]
    for i, (axis, start, end, step) in enumerate(kept):
        last = i == len(kept) - 1
        out = node.output[0] if last else g.fresh(f"{node.output[0]}__ax{i}")
        ins = [src] + [g.int64_initializer(f"{base}__{k}{i}", [v])
                       for k, v in (("starts", start), ("ends", end), ("axes", axis), ("steps", step))]
        nodes.append(helper.make_node("Slice", ins, [out], name=g.fresh(f"{base}__ax{i}")))
        src = out
    return nodes


ONNX2TF_REWRITES: tuple[Rewrite, ...] = (
    Rewrite("ReduceL2->Sqrt(ReduceSumSquare)", "ReduceL2", _reduce_l2),
    Rewrite("ReduceL1->ReduceSum(Abs)", "ReduceL1", _reduce_l1),
    Rewrite("Slice->one Slice per axis", "Slice", _slice),
)


def opset_of(model) -> int:
    return next((o.version for o in model.opset_import if o.domain in _STD_DOMAINS), 0)


def _names(graph, out: set[str]) -> set[str]:
    for t in list(graph.input) + list(graph.output) + list(graph.value_info):
        out.add(t.name)
    out.update(i.name for i in graph.initializer)
    for node in graph.node:
        out.add(node.name)
        out.update(node.input)
        out.update(node.output)
        for a in node.attribute:
            for sub in ([a.g] if a.HasField("g") else []) + list(a.graphs):
                _names(sub, out)
    return out


def _rewrite_graph(graph, opset: int, taken: set[str], by_op: dict[str, Rewrite], counts: dict[str, int]) -> None:
    from onnx import NodeProto

    for node in graph.node:
        for a in node.attribute:
            for sub in ([a.g] if a.HasField("g") else []) + list(a.graphs):
                _rewrite_graph(sub, opset, taken, by_op, counts)
    match = [by_op.get(n.op_type) if n.domain in _STD_DOMAINS else None for n in graph.node]
    if not any(match):
        return
    g = _Graph(graph, opset, taken)
    nodes, changed = [], False
    for node, rw in zip(graph.node, match):
        new = rw.replace(g, node) if rw is not None else None
        if new is None:
            kept = NodeProto()
            kept.CopyFrom(node)  # detached: the repeated field is cleared below
            nodes.append(kept)
        else:
            nodes.extend(new)
            counts[rw.name] = counts.get(rw.name, 0) + 1
            changed = True
    if not changed:
        return
    graph.ClearField("node")  # same order: a replacement reads the node's inputs, writes its outputs
    graph.node.extend(nodes)


def apply_rewrites(model, rewrites: tuple[Rewrite, ...] = ONNX2TF_REWRITES) -> dict[str, int]:
    """Rewrite ``model`` (an onnx ModelProto) in place; return {rewrite name: nodes rewritten}."""
    by_op = {r.op_type: r for r in rewrites}
    counts: dict[str, int] = {}
    _rewrite_graph(model.graph, opset_of(model), _names(model.graph, set()), by_op, counts)
    return counts
