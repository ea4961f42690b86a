"""Editing a .tflite flatbuffer in Python: unpack it into the schema's object API, change it, pack it.

Used by the passes that stay inside the TFLite format (folding input normalization, dequantizing
outputs) and by the metadata writer. Packing keeps every constant buffer 16-byte aligned, as
TFLiteConverter writes them (the generated ``BufferT.Pack`` would align them to 1 byte only).
Anything appended after the flatbuffer (the zip of associated files) is dropped on unpack; the
metadata writer appends a fresh one.
"""

from __future__ import annotations

import numpy as np

from edgec.errors import UnsupportedModelError, require

TFLITE_IDENTIFIER = b"TFL3"
BUFFER_ALIGNMENT = 16

# TensorType codes of the TFLite schema and the numpy dtype of each (the ones passes create or read).
TENSOR_TYPES = {"float32": 0, "float16": 1, "int32": 2, "uint8": 3, "int64": 4, "bool": 6, "int16": 7,
                "int8": 9}
TYPE_NAMES = {v: k for k, v in TENSOR_TYPES.items()}


def schema():
    return require("ai_edge_litert.schema_py_generated", purpose="editing .tflite files")


def unpack(data: bytes, where: str = "model"):
    """The whole model as a ``ModelT`` object tree. Refuses models whose weights live outside the
    flatbuffer (buffer offsets, > 2 GB models): re-packing would lose them."""
    s = schema()
    if len(data) < 8 or data[4:8] != TFLITE_IDENTIFIER:
        raise UnsupportedModelError("not a TFLite flatbuffer (no TFL3 identifier)", where=where)
    model = s.ModelT.InitFromObj(s.Model.GetRootAs(data, 0))
    if any(getattr(b, "offset", 0) for b in model.buffers or []):
        raise UnsupportedModelError("the model keeps its weights outside the flatbuffer (a > 2 GB model); "
                                    "edgec cannot re-pack it", where=where,
                                    hint="build with --no-bundle, or bundle a smaller variant")
    return model


def pack(model) -> bytes:
    """Serialize a ``ModelT`` with 16-byte aligned constant buffers."""
    import flatbuffers

    s = schema()
    for b in model.buffers or []:
        if b is not None and b.data is not None and not isinstance(b, _AlignedBufferT):
            b.__class__ = _aligned_buffer_class(s)
    builder = flatbuffers.Builder(1 << 20)
    builder.Finish(model.Pack(builder), TFLITE_IDENTIFIER)
    return bytes(builder.Output())


class _AlignedBufferT:  # marker base; the real class is made once the schema module is imported
    pass


_ALIGNED = {}


def _aligned_buffer_class(s):
    if "cls" not in _ALIGNED:
        class AlignedBufferT(s.BufferT, _AlignedBufferT):
            def Pack(self, builder):
                data = np.ascontiguousarray(np.asarray(self.data, dtype=np.uint8)).reshape(-1)
                builder.StartVector(1, data.size, BUFFER_ALIGNMENT)
                builder.head = builder.head - data.size
                builder.Bytes[builder.head:builder.head + data.size] = data.tobytes()
                vec = builder.EndVector()
                s.BufferStart(builder)
                s.BufferAddData(builder, vec)
                s.BufferAddOffset(builder, self.offset)
                s.BufferAddSize(builder, self.size)
                return s.BufferEnd(builder)

        _ALIGNED["cls"] = AlignedBufferT
    return _ALIGNED["cls"]


# -- building blocks for passes -------------------------------------------------------------------

def add_buffer(model, data: np.ndarray | None = None) -> int:
    s = schema()
    b = s.BufferT()
    if data is not None:
        b.data = np.frombuffer(np.ascontiguousarray(data).tobytes(), dtype=np.uint8)
    model.buffers.append(b)
    return len(model.buffers) - 1


def add_tensor(model, sg, name: str, shape, dtype: str, *, data: np.ndarray | None = None,
               quant: tuple[float, int] | None = None, shape_signature=None) -> int:
    """Append a tensor (a constant when ``data`` is given) to subgraph ``sg``; returns its index."""
    s = schema()
    t = s.TensorT()
    t.name = name
    t.shape = np.asarray(list(shape), dtype=np.int32)
    if shape_signature is not None:
        t.shapeSignature = np.asarray(list(shape_signature), dtype=np.int32)
    t.type = TENSOR_TYPES[dtype]
    t.buffer = add_buffer(model, data) if data is not None else 0
    if quant is not None:
        q = s.QuantizationParametersT()
        q.scale = np.asarray([quant[0]], dtype=np.float32)
        q.zeroPoint = np.asarray([quant[1]], dtype=np.int64)
        t.quantization = q
    sg.tensors.append(t)
    return len(sg.tensors) - 1


def opcode_index(model, op: str, version: int) -> int:
    """Index of the operator code for builtin ``op`` (e.g. "MUL") at ``version``, added if missing."""
    s = schema()
    code = getattr(s.BuiltinOperator, op)
    for i, oc in enumerate(model.operatorCodes):
        if max(oc.builtinCode, oc.deprecatedBuiltinCode) == code and oc.version == version:
            return i
    oc = s.OperatorCodeT()
    oc.builtinCode = code
    oc.deprecatedBuiltinCode = min(code, s.BuiltinOperator.PLACEHOLDER_FOR_GREATER_OP_CODES)
    oc.version = version
    model.operatorCodes.append(oc)
    return len(model.operatorCodes) - 1


def make_op(model, op: str, version: int, inputs: list[int], outputs: list[int]):
    """An operator with empty (default) options: fused activation NONE for MUL/ADD."""
    s = schema()
    o = s.OperatorT()
    o.opcodeIndex = opcode_index(model, op, version)
    o.inputs = np.asarray(inputs, dtype=np.int32)
    o.outputs = np.asarray(outputs, dtype=np.int32)
    options = {"MUL": ("MulOptions", s.MulOptionsT), "ADD": ("AddOptions", s.AddOptionsT),
               "QUANTIZE": ("QuantizeOptions", s.QuantizeOptionsT),
               "DEQUANTIZE": ("DequantizeOptions", s.DequantizeOptionsT)}.get(op)
    if options:
        o.builtinOptionsType = getattr(s.BuiltinOptions, options[0])
        o.builtinOptions = options[1]()
    return o


def tensor_quant(t) -> tuple[float, int] | None:
    q = t.quantization
    if q is None or q.scale is None or len(q.scale) == 0:
        return None
    if len(q.scale) != 1:
        raise UnsupportedModelError(f"tensor '{_name(t)}' is quantized per channel; edgec expects "
                                    "per-tensor quantization on model inputs and outputs")
    return float(q.scale[0]), int(q.zeroPoint[0]) if q.zeroPoint is not None and len(q.zeroPoint) else 0


def _name(t) -> str:
    n = t.name
    return n.decode() if isinstance(n, bytes) else str(n)


def tensor_name(t) -> str:
    return _name(t)


def retarget_signatures(model, kind: str, old: int, new: int) -> None:
    """Point every signature entry of subgraph 0 that names tensor ``old`` at tensor ``new``."""
    for sd in model.signatureDefs or []:
        if sd.subgraphIndex != 0:
            continue
        for entry in (sd.inputs if kind == "inputs" else sd.outputs) or []:
            if entry.tensorIndex == old:
                entry.tensorIndex = new
