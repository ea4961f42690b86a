"""Per-op costs of a .tflite graph without TensorFlow: each operator's class, MACs and bytes moved,
and its tensors' shapes and types. The latency estimate, the delegate-coverage report and the
runtime-compatibility check all read this one description.

Conventions (shared with the analytic reference models in ``estimate_refs``):

- MACs: CONV_2D ``out x kh x kw x cin``; DEPTHWISE_CONV_2D ``out x kh x kw``; FULLY_CONNECTED and
  BATCH_MATMUL ``out x K``; TRANSPOSE_CONV ``in x kh x kw x cout``; other ops 0.
- bytes: the op's activation input(s), its weights (not the bias) and its output, each at the type
  the kernel reads: a weight that a DEQUANTIZE makes float at load time (fp16 models) counts as
  float32, since that is what runs. Reshape-like ops move nothing; DEQUANTIZE of a constant runs
  once at load and is not an op of the inference.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from pathlib import Path

from edgec.errors import InputError

_ITEMSIZE = {"float32": 4, "float16": 2, "int32": 4, "uint8": 1, "int64": 8, "bool": 1, "int16": 2, "int8": 1,
             "float64": 8, "uint32": 4, "uint16": 2, "int4": 1}
FREE_OPS = {"RESHAPE", "SQUEEZE", "EXPAND_DIMS"}
DENSE_KINDS = ("conv", "fc")


@dataclass
class OpCost:
    op: str
    version: int = 1
    node: str = ""
    kind: str = "other"      # conv | depthwise | fc | elementwise | pool | layout | other
    macs: int = 0
    bytes: int = 0
    in_shapes: list = field(default_factory=list)
    in_dtypes: list = field(default_factory=list)
    in_const: list = field(default_factory=list)   # per input: a constant (weights, shape) or not
    out_shapes: list = field(default_factory=list)
    out_dtypes: list = field(default_factory=list)
    hybrid: bool = False     # float activations with integer weights (dynamic-range quantization)


@dataclass
class Features:
    """What the cost model reads from a graph: MACs by class, bytes moved, op count."""

    dense_macs: float = 0.0
    dw_macs: float = 0.0
    bytes: float = 0.0
    ops: int = 0

    @property
    def macs(self) -> float:
        return self.dense_macs + self.dw_macs

    def to_dict(self) -> dict:
        return {"macs_millions": round(self.macs / 1e6, 2), "dense_macs_millions": round(self.dense_macs / 1e6, 2),
                "depthwise_macs_millions": round(self.dw_macs / 1e6, 2), "mbytes_moved": round(self.bytes / 1e6, 2),
                "ops": self.ops}


def features(ops: list[OpCost]) -> Features:
    f = Features()
    for o in ops:
        if o.kind in DENSE_KINDS:
            f.dense_macs += o.macs
        elif o.kind == "depthwise":
            f.dw_macs += o.macs
        f.bytes += o.bytes
        f.ops += o.kind != "layout"
    return f


def _numel(shape) -> int:
    n = 1
    for d in shape:
        n *= max(int(d), 1)
    return n


def _nbytes(shape, dtype: str) -> int:
    return _numel(shape) * _ITEMSIZE.get(dtype, 4)


def _kind_and_macs(op: str, ins: list, outs: list) -> tuple[str, int]:
    """ins/outs: (shape, dtype) pairs; ins[1] is the weight where the op has one."""
    out = _numel(outs[0][0]) if outs else 0
    if op == "CONV_2D" and len(ins) > 1 and len(ins[1][0]) == 4:
        _, kh, kw, cin = ins[1][0]
        return "conv", out * kh * kw * cin
    if op == "DEPTHWISE_CONV_2D" and len(ins) > 1 and len(ins[1][0]) == 4:
        _, kh, kw, _ = ins[1][0]
        return "depthwise", out * kh * kw
    if op == "FULLY_CONNECTED" and len(ins) > 1 and ins[1][0]:
        return "fc", out * int(ins[1][0][-1])
    if op == "BATCH_MATMUL" and len(ins) > 1 and ins[0][0]:
        return "fc", out * int(ins[0][0][-1])
    if op == "TRANSPOSE_CONV" and len(ins) > 2 and len(ins[1][0]) == 4:
        cout, kh, kw, _ = ins[1][0]
        return "conv", _numel(ins[2][0]) * kh * kw * cout
    if op in FREE_OPS:
        return "layout", 0
    if op in ("AVERAGE_POOL_2D", "MAX_POOL_2D", "MEAN", "SUM", "REDUCE_MAX"):
        return "pool", 0
    if op in ("ADD", "MUL", "SUB", "DIV", "HARD_SWISH", "LOGISTIC", "RELU", "RELU6", "TANH", "MAXIMUM",
              "MINIMUM", "SQUARED_DIFFERENCE", "RSQRT", "GELU", "EXP", "PAD", "CONCATENATION", "TRANSPOSE",
              "QUANTIZE", "DEQUANTIZE", "SOFTMAX"):
        return "elementwise", 0
    return "other", 0


def _op_bytes(op: str, kind: str, ins: list, outs: list) -> int:
    if kind == "layout":
        return 0
    used = ins[:2] if kind in ("conv", "depthwise", "fc") else ins
    if op == "TRANSPOSE_CONV":
        used = ins[1:3]
    return sum(_nbytes(s, t) for s, t in used) + sum(_nbytes(s, t) for s, t in outs)


def read_op_costs(path: Path) -> list[OpCost]:
    """Every operator of subgraph 0 with its class, MACs and bytes."""
    from edgec.formats.tflite import _builtin_name, _schema, _TYPES

    path = Path(path)
    data = path.read_bytes()
    if len(data) < 8 or data[4:8] != b"TFL3":
        raise InputError("not a TFLite flatbuffer (no TFL3 identifier)", where=str(path))
    s = _schema()
    model = s.Model.GetRootAs(data, 0)
    codes = []
    for i in range(model.OperatorCodesLength()):
        oc = model.OperatorCodes(i)
        code = max(oc.BuiltinCode(), oc.DeprecatedBuiltinCode())
        name = "CUSTOM:" + (oc.CustomCode() or b"?").decode() if code == s.BuiltinOperator.CUSTOM \
            else _builtin_name(s, code)
        codes.append((name, oc.Version()))
    sg = model.Subgraphs(0)
    tensors = _tensor_table(model, sg, _TYPES)
    dequantized = {}  # output tensor of a DEQUANTIZE of a constant -> its float type
    ops = []
    for i in range(sg.OperatorsLength()):
        o = sg.Operators(i)
        name, version = codes[o.OpcodeIndex()]
        in_idx = [int(j) for j in (o.InputsAsNumpy() if o.InputsLength() else []) if j >= 0]
        out_idx = [int(j) for j in (o.OutputsAsNumpy() if o.OutputsLength() else []) if j >= 0]
        if name == "DEQUANTIZE" and in_idx and tensors[in_idx[0]][2]:
            for j in out_idx:
                dequantized[j] = tensors[j][1]
            continue  # runs once at load time
        ops.append(_op_cost(name, version, in_idx, out_idx, tensors, dequantized))
    return ops


def _tensor_table(model, sg, types) -> list[tuple]:
    """(shape, dtype, is_constant, name) per tensor."""
    table = []
    for j in range(sg.TensorsLength()):
        t = sg.Tensors(j)
        shape = tuple(int(d) for d in t.ShapeAsNumpy()) if t.ShapeLength() else ()
        b = model.Buffers(t.Buffer()) if 0 < t.Buffer() < model.BuffersLength() else None
        const = b is not None and (b.DataLength() > 0 or b.Size() > 0)
        table.append((shape, types.get(t.Type(), str(t.Type())), const, t.Name().decode()))
    return table


def _op_cost(name, version, in_idx, out_idx, tensors, dequantized) -> OpCost:
    ins = [(tensors[j][0], dequantized.get(j, tensors[j][1])) for j in in_idx]
    outs = [(tensors[j][0], tensors[j][1]) for j in out_idx]
    kind, macs = _kind_and_macs(name, ins, outs)
    hybrid = (kind in ("conv", "depthwise", "fc") and len(ins) > 1 and ins[0][1].startswith("float")
              and ins[1][1] in ("int8", "uint8", "int4"))
    return OpCost(op=name, version=version, node=tensors[out_idx[0]][3] if out_idx else "", kind=kind,
                  macs=int(macs), bytes=_op_bytes(name, kind, ins, outs),
                  in_shapes=[list(s) for s, _ in ins], in_dtypes=[t for _, t in ins],
                  in_const=[bool(tensors[j][2] or j in dequantized) for j in in_idx],
                  out_shapes=[list(s) for s, _ in outs], out_dtypes=[t for _, t in outs], hybrid=hybrid)


def constant_types(path: Path) -> set[str]:
    """The tensor types of the graph's constants (weights): float16 marks an fp16 model."""
    from edgec.formats.tflite import _schema, _TYPES

    s = _schema()
    model = s.Model.GetRootAs(Path(path).read_bytes(), 0)
    sg = model.Subgraphs(0)
    return {t for _, t, const, _ in _tensor_table(model, sg, _TYPES) if const}
