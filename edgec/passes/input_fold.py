"""Same-format TFLite passes that make a model take what an on-device image pipeline gives it.

``fold_input_normalization`` puts a per-channel ``(pixel - mean) / std`` inside the model, in front of
its image input: the new input takes ``pixel / 255`` (float32 in [0, 1], metadata mean [0], std [255])
or raw ``uint8`` pixels (scale 1/255, zero point 0). MediaPipe Tasks refuses per-channel
normalization in metadata, and full-integer models need a uint8 input for MediaPipe and Android.

    float input:  x01 -> MUL(255/std) -> ADD(-mean/std) -> the model's original input tensor
    uint8 input:  q   -> DEQUANTIZE -> MUL -> ADD [-> QUANTIZE to the original int type] -> original

``mean`` and ``std`` are in 0..255 pixel units (the TFLite metadata convention). The original input
tensor keeps its index, so every op that read it is untouched. ``dequantize_outputs`` appends a
DEQUANTIZE to int8 outputs (MediaPipe reads only float32 or uint8 scores).
"""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np

from edgec.errors import UnsupportedModelError
from edgec.formats import tflite_graph as g

# Op versions (tensorflow/lite/tools/versioning/op_version.cc) for the signatures these passes write.
_DEQUANTIZE_VERSION = {"uint8": 1, "int8": 2, "int16": 3}
_QUANTIZE_VERSION = {"uint8": 1, "int8": 1, "int16": 2}


@dataclass(frozen=True)
class FoldRecord:
    """What a fold did, for the manifest: the input now expects ``expects``."""

    input: str
    dtype: str                    # the new input's dtype: float32 or uint8
    folded_mean: tuple[float, ...]
    folded_std: tuple[float, ...]
    expects: str

    def to_dict(self) -> dict:
        return {"input": self.input, "dtype": self.dtype, "folded_mean": list(self.folded_mean),
                "folded_std": list(self.folded_std), "expects": self.expects}


def fold_input_normalization(model, input_pos: int, mean, std, *, channel_axis: int = -1,
                             dtype: str = "float32") -> FoldRecord:
    """Prepend ``(pixel - mean) / std`` to subgraph input ``input_pos`` of ``model`` (a ``ModelT``)."""
    if dtype not in ("float32", "uint8"):
        raise ValueError(f"dtype must be float32 or uint8, got {dtype}")
    sg = model.subgraphs[0]
    old = int(sg.inputs[input_pos])
    t = sg.tensors[old]
    name = g.tensor_name(t)
    old_type = g.TYPE_NAMES.get(t.type)
    if old_type not in ("float32", "int8", "uint8", "int16"):
        raise UnsupportedModelError(f"cannot fold normalization into input '{name}' of type {old_type}",
                                    hint="image inputs must be float32, int8, uint8 or int16")
    shape = [int(d) for d in t.shape]
    axis = channel_axis % len(shape)
    mean = np.asarray(mean, dtype=np.float64).reshape(-1)
    std = np.asarray(std, dtype=np.float64).reshape(-1)
    if mean.size != shape[axis] or std.size != shape[axis]:
        raise UnsupportedModelError(f"normalization has {mean.size} mean and {std.size} std values but "
                                    f"input '{name}' has {shape[axis]} channels", where="normalization")
    const_shape = [shape[axis]] + [1] * (len(shape) - 1 - axis)
    scale = (255.0 / std).astype(np.float32).reshape(const_shape)
    bias = (-mean / std).astype(np.float32).reshape(const_shape)
    sig = getattr(t, "shapeSignature", None)

    t.name = f"{name}/edgec_normalized"
    quant = (1.0 / 255.0, 0) if dtype == "uint8" else None
    new = g.add_tensor(model, sg, name, shape, dtype, quant=quant, shape_signature=sig)
    ops = []
    x = new
    if dtype == "uint8":
        x = g.add_tensor(model, sg, f"{name}/edgec_pixels01", shape, "float32", shape_signature=sig)
        ops.append(g.make_op(model, "DEQUANTIZE", 1, [new], [x]))
    c_scale = g.add_tensor(model, sg, f"{name}/edgec_scale", const_shape, "float32", data=scale)
    c_bias = g.add_tensor(model, sg, f"{name}/edgec_bias", const_shape, "float32", data=bias)
    scaled = g.add_tensor(model, sg, f"{name}/edgec_scaled", shape, "float32", shape_signature=sig)
    ops.append(g.make_op(model, "MUL", 1, [x, c_scale], [scaled]))
    if old_type == "float32":
        ops.append(g.make_op(model, "ADD", 1, [scaled, c_bias], [old]))
    else:
        normed = g.add_tensor(model, sg, f"{name}/edgec_normalized_float", shape, "float32", shape_signature=sig)
        ops.append(g.make_op(model, "ADD", 1, [scaled, c_bias], [normed]))
        ops.append(g.make_op(model, "QUANTIZE", _QUANTIZE_VERSION[old_type], [normed], [old]))
    sg.operators[0:0] = ops
    sg.inputs = np.array(sg.inputs, dtype=np.int32)  # the unpacked array is a read-only view
    sg.inputs[input_pos] = new
    g.retarget_signatures(model, "inputs", old, new)
    expects = ("pixels 0..255 as uint8 (scale 1/255, zero point 0)" if dtype == "uint8"
               else "pixels / 255 as float32 in [0, 1] (metadata mean [0], std [255])")
    return FoldRecord(name, dtype, tuple(round(float(v), 6) for v in mean), tuple(round(float(v), 6) for v in std),
                      expects)


def dequantize_outputs(model, only: tuple[str, ...] = ("int8", "int16")) -> list[str]:
    """Append DEQUANTIZE to every output of a type in ``only``; the float32 output takes the old name."""
    sg = model.subgraphs[0]
    done = []
    sg.outputs = np.array(sg.outputs, dtype=np.int32)
    for pos, idx in enumerate(list(sg.outputs)):
        t = sg.tensors[int(idx)]
        kind = g.TYPE_NAMES.get(t.type)
        if kind not in only:
            continue
        name = g.tensor_name(t)
        t.name = f"{name}/edgec_quantized"
        new = g.add_tensor(model, sg, name, [int(d) for d in t.shape], "float32",
                           shape_signature=getattr(t, "shapeSignature", None))
        sg.operators.append(g.make_op(model, "DEQUANTIZE", _DEQUANTIZE_VERSION[kind], [int(idx)], [new]))
        sg.outputs[pos] = new
        g.retarget_signatures(model, "outputs", int(idx), new)
        done.append(name)
    return done
