"""Test helper: damage one layer of a .tflite file in place of its weights, to check that parity
localization finds it. Edits the flatbuffer's weight buffer bytes; nothing else changes."""

from __future__ import annotations

from pathlib import Path

import numpy as np


def _ops(model, s):
    codes = [max(model.OperatorCodes(i).BuiltinCode(), model.OperatorCodes(i).DeprecatedBuiltinCode())
             for i in range(model.OperatorCodesLength())]
    names = {v: k for k, v in vars(s.BuiltinOperator).items() if not k.startswith("_")}
    sg = model.Subgraphs(0)
    return sg, [(i, names[codes[sg.Operators(i).OpcodeIndex()]]) for i in range(sg.OperatorsLength())]


def corrupt_weights(src: Path, dst: Path, op_index: int, scale: float = -2.0, shift: float = 0.1) -> dict:
    """Write ``dst``: ``src`` with op ``op_index``'s weights (its input 1) mapped to w * scale + shift.
    Returns the op's type and output tensor name."""
    from ai_edge_litert import schema_py_generated as s

    data = bytearray(Path(src).read_bytes())
    model = s.Model.GetRootAs(data, 0)
    sg, ops = _ops(model, s)
    op = sg.Operators(op_index)
    weights = sg.Tensors(op.Inputs(1))
    raw = model.Buffers(weights.Buffer()).DataAsNumpy()  # a view into ``data``
    assert weights.Type() == s.TensorType.FLOAT32 and raw.size, "expects float32 weights stored inline"
    values = np.frombuffer(raw.tobytes(), np.float32) * scale + shift
    raw[:] = np.frombuffer(values.astype(np.float32).tobytes(), np.uint8)
    Path(dst).write_bytes(bytes(data))
    return {"op": ops[op_index][1], "index": op_index, "tensor": sg.Tensors(op.Outputs(0)).Name().decode()}


def op_types(path: Path) -> list[str]:
    from ai_edge_litert import schema_py_generated as s

    return [name for _, name in _ops(s.Model.GetRootAs(Path(path).read_bytes(), 0), s)[1]]
