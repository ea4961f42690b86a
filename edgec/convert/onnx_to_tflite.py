"""ONNX -> TFLite directly with onnx2tf's own TFLite export (one tool, one step).

Slower than the default ONNX -> SavedModel -> TFLite route (onnx2tf's Keras->SavedModel export inside
TFLiteConverter dominates) and not separately cached, but it is the route onnx2tf users know, so
``--route onnx,tflite`` makes it available. onnx2tf allows Flex ops; edgec refuses a result that
contains any, naming them.
"""

from __future__ import annotations

import shutil
import tempfile
from pathlib import Path

from edgec.errors import ConversionError, UnsupportedOpsError
from edgec.formats import Format
from edgec.formats.tflite import read_tflite
from edgec.convert import Converter, StepContext, register
from edgec.convert._onnx2tf import run_onnx2tf

_FILES = {"fp32": "model_float32.tflite", "fp16": "model_float16.tflite",
          "dynamic_int8": "model_dynamic_range_quant.tflite"}


def _convert(ctx: StepContext) -> dict:
    variant = ctx.settings.get("variant", "fp32")
    if variant not in _FILES:
        raise ConversionError(f"variant '{variant}' is not produced by the direct onnx2tf edge",
                              hint=f"choose from {', '.join(_FILES)}")
    with tempfile.TemporaryDirectory(prefix="edgec-onnx2tflite-") as work:
        out_dir = Path(work) / "onnx2tf_out"
        _, _, log, _, rewrites = run_onnx2tf(ctx.input, Path(work), ctx.inputs, ctx.settings,
                                   output_signaturedefs=True, copy_onnx_input_output_names_to_tflite=True,
                                   output_dynamic_range_quantized_tflite=(variant == "dynamic_int8"))
        ctx.log.append(log)
        produced = out_dir / _FILES[variant]
        if not produced.is_file():
            raise ConversionError(f"onnx2tf did not write {produced.name}", where=str(ctx.input))
        flex = read_tflite(produced).custom_ops()
        if flex:
            raise UnsupportedOpsError("onnx->tflite (onnx2tf)", flex, where=str(ctx.input),
                                      hint="these became Flex/custom ops that the target runtime cannot run")
        shutil.copyfile(produced, ctx.output)
    return {"variant": variant, "rewrites": rewrites}


register(Converter(
    name="onnx_to_tflite", src=Format.ONNX, dst=Format.TFLITE, run=_convert,
    tools=("onnx2tf", "tensorflow", "tf-keras", "onnx", "onnxsim"),
    uses=("input_shapes", "keep_layout", "onnx2tf", "variant"), cost=2.5,
    description="onnx2tf's own TFLite output (the tool as users run it by hand)"))
