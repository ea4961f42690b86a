"""Reading a .tflite flatbuffer without TensorFlow: I/O, signatures, ops (with versions), weights.

Uses the schema's generated reader that ai-edge-litert ships (no interpreter is created).
"""

from __future__ import annotations

from collections import Counter
from dataclasses import dataclass, field
from pathlib import Path

from edgec.errors import InputError, require
from edgec.formats import TensorSpec

_TYPES = {0: "float32", 1: "float16", 2: "int32", 3: "uint8", 4: "int64", 5: "string", 6: "bool",
          7: "int16", 9: "int8", 10: "float64", 16: "uint32", 17: "uint16", 15: "int4"}


def _schema():
    return require("ai_edge_litert.schema_py_generated", purpose="reading .tflite files")


@dataclass
class TFLiteInfo:
    inputs: list[TensorSpec]
    outputs: list[TensorSpec]
    signatures: dict[str, dict[str, dict[str, str]]]   # key -> {"inputs": {sig_name: tensor_name}, ...}
    ops: list[tuple[str, int]]                           # (op name, version) per operator, in order
    op_nodes: list[tuple[str, str]] = field(default_factory=list)  # (op name, first output tensor name)
    params: int = 0
    weight_bytes: int = 0
    quantized_inputs: dict[str, tuple[float, int]] = field(default_factory=dict)

    @property
    def histogram(self) -> dict[str, int]:
        return dict(Counter(name for name, _ in self.ops).most_common())

    def custom_ops(self) -> dict[str, list[str]]:
        bad: dict[str, list[str]] = {}
        for op, node in self.op_nodes:
            if op.startswith("CUSTOM:"):
                bad.setdefault(op[7:], []).append(node)
        return bad


def read_tflite(path: Path) -> TFLiteInfo:
    path = Path(path)
    data = path.read_bytes()
    if len(data) < 8 or data[4:8] != b"TFL3":
        raise InputError("not a TFLite flatbuffer (no TFL3 identifier)", where=str(path), hint="re-export the model")
    s = _schema()
    try:
        model = s.Model.GetRootAs(data, 0)
        names = {}
        for i in range(model.OperatorCodesLength()):
            oc = model.OperatorCodes(i)
            code = max(oc.BuiltinCode(), oc.DeprecatedBuiltinCode())
            if code == s.BuiltinOperator.CUSTOM:
                names[i] = ("CUSTOM:" + (oc.CustomCode() or b"?").decode(), oc.Version())
            else:
                names[i] = (_builtin_name(s, code), oc.Version())
        sg = model.Subgraphs(0)

        def spec(ti: int) -> TensorSpec:
            t = sg.Tensors(ti)
            shape_sig = t.ShapeSignatureAsNumpy() if t.ShapeSignatureLength() else None
            shape = [int(d) for d in t.ShapeAsNumpy()] if t.ShapeLength() else []
            if shape_sig is not None and len(shape_sig) == len(shape):
                shape = [None if int(d) < 0 else int(v) for d, v in zip(shape_sig, shape)]
            return TensorSpec(t.Name().decode(), tuple(shape), _TYPES.get(t.Type(), str(t.Type())))

        inputs = [spec(sg.Inputs(i)) for i in range(sg.InputsLength())]
        outputs = [spec(sg.Outputs(i)) for i in range(sg.OutputsLength())]
        quant = {}
        for i in range(sg.InputsLength()):
            t = sg.Tensors(sg.Inputs(i))
            q = t.Quantization()
            if q is not None and q.ScaleLength():
                quant[t.Name().decode()] = (float(q.Scale(0)), int(q.ZeroPoint(0)))
        ops, op_nodes = [], []
        for i in range(sg.OperatorsLength()):
            op = sg.Operators(i)
            name, ver = names[op.OpcodeIndex()]
            ops.append((name, ver))
            out = sg.Tensors(op.Outputs(0)).Name().decode() if op.OutputsLength() else f"op#{i}"
            op_nodes.append((name, out))
        params = weight_bytes = 0
        for i in range(sg.TensorsLength()):
            t = sg.Tensors(i)
            b = model.Buffers(t.Buffer()) if t.Buffer() < model.BuffersLength() else None
            nbytes = b.DataLength() if b is not None else 0
            if nbytes == 0 and b is not None and b.Size() > 0:
                nbytes = int(b.Size())
            if nbytes:
                weight_bytes += nbytes
                n = 1
                for d in (t.ShapeAsNumpy() if t.ShapeLength() else []):
                    n *= int(d)
                params += n
        sigs = {}
        for i in range(model.SignatureDefsLength()):
            sd = model.SignatureDefs(i)
            sigs[sd.SignatureKey().decode()] = {
                "inputs": {sd.Inputs(j).Name().decode(): sg.Tensors(sd.Inputs(j).TensorIndex()).Name().decode()
                           for j in range(sd.InputsLength())},
                "outputs": {sd.Outputs(j).Name().decode(): sg.Tensors(sd.Outputs(j).TensorIndex()).Name().decode()
                            for j in range(sd.OutputsLength())},
            }
    except InputError:
        raise
    except Exception as exc:
        raise InputError(f"corrupt or truncated TFLite file ({type(exc).__name__}: {exc})", where=str(path),
                         hint="re-export the model") from exc
    return TFLiteInfo(inputs, outputs, sigs, ops, op_nodes, params, weight_bytes, quant)


_BUILTIN_NAMES: dict[int, str] = {}


def _builtin_name(s, code: int) -> str:
    if not _BUILTIN_NAMES:
        for k, v in vars(s.BuiltinOperator).items():
            if not k.startswith("_") and isinstance(v, int):
                _BUILTIN_NAMES[v] = k
    return _BUILTIN_NAMES.get(code, f"BUILTIN_{code}")
