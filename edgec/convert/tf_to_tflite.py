"""TF SavedModel -> TFLite with TFLiteConverter, one call per variant.

fp32, fp16 (fp16 weights) and dynamic_int8 need nothing else; int8 and int16x8 are calibrated on the
representative dataset the build hands over in ``ctx.resources["calibration"]`` (settings in
``edgec.passes.quantize``; the cache key holds its digest and the I/O type via ``quantization``).

Only builtin TFLite ops are allowed: a model that would need Flex (select TF) ops cannot run on the
interpreters edgec targets, so the converter's list of missing ops becomes one error naming them.
"""

from __future__ import annotations

import re

from edgec.errors import ConversionError, UnsupportedOpsError, require
from edgec.formats import Format
from edgec.convert import Converter, StepContext, register

VARIANT_OPTIONS = {
    "fp32": {},
    "fp16": {"optimizations": True, "supported_types": "float16"},
    "dynamic_int8": {"optimizations": True},
}


def configure(converter, variant: str, tf, settings: dict | None = None, resources: dict | None = None) -> None:
    from edgec.passes import quantize

    if quantize.needs_calibration(variant):
        data = (resources or {}).get("calibration")
        if not data or not (settings or {}).get("quantization"):
            raise ConversionError(f"variant '{variant}' needs calibration data and none reached the converter",
                                  hint="pass --calibration-data PATH (or --synthetic-calibration)")
        quantize.configure(converter, variant, settings["quantization"], data, tf)
        return
    if variant not in VARIANT_OPTIONS:
        raise ConversionError(f"unknown variant '{variant}'", hint="build fp32, fp16, dynamic_int8, int8 or int16x8")
    opts = VARIANT_OPTIONS[variant]
    converter.target_spec.supported_ops = [tf.lite.OpsSet.TFLITE_BUILTINS]
    if opts.get("optimizations"):
        converter.optimizations = [tf.lite.Optimize.DEFAULT]
    if opts.get("supported_types") == "float16":
        converter.target_spec.supported_types = [tf.float16]


def unsupported_from_message(text: str) -> dict[str, list[str]]:
    """Pull every op name, with the TF node names the converter reports, out of a TFLiteConverter error."""
    ops: dict[str, list[str]] = {}
    for line in text.splitlines():
        m = re.search(r"'(tf\.[A-Za-z0-9_]+)' op is neither a custom op nor a flex op", line)
        if not m:
            continue
        nodes = ops.setdefault(m.group(1), [])
        for loc in re.findall(r'fused\["[A-Za-z0-9_]+:", "([^"@]+)', line)[:1]:
            nodes.append(loc)
    for m in re.finditer(r"[Qq]uantization (?:to 16x8-bit )?not yet supported for op: '?([A-Za-z0-9_]+)'?", text):
        ops.setdefault(f"tfl.{m.group(1)}", ["(cannot be quantized)"])
    m = re.search(r"TF Select ops: ([^\n]+)", text)
    if m:
        for op in m.group(1).split(","):
            ops.setdefault(f"tf.{op.strip()}", [])
    return {k: (v or ["(tf graph)"]) for k, v in ops.items()}


def _convert(ctx: StepContext) -> dict:
    tf = require("tensorflow", purpose="TF to TFLite")
    variant = ctx.settings.get("variant", "fp32")
    try:
        converter = tf.lite.TFLiteConverter.from_saved_model(str(ctx.input), signature_keys=["serving_default"])
    except Exception as exc:
        raise ConversionError(f"cannot load the SavedModel for TFLite conversion: {str(exc)[:300]}",
                              where=str(ctx.input)) from exc
    configure(converter, variant, tf, ctx.settings, ctx.resources)
    from edgec.logs import captured

    try:
        with captured():  # "Ignored output_format", MLIR notes: the converter's C++ log lines
            blob = converter.convert()
    except Exception as exc:
        text = str(exc)
        ops = unsupported_from_message(text)
        if ops:
            quant = any(op.startswith("tfl.") for op in ops)
            raise UnsupportedOpsError(f"tf->tflite ({variant})", ops, where=str(ctx.input),
                                      hint="these ops have no quantized kernel; build int16x8 or dynamic_int8, "
                                           "or replace them in the source model" if quant else
                                           "these TF ops have no builtin TFLite kernel; rewrite them in the "
                                           "source model") from exc
        raise ConversionError(f"TFLiteConverter failed: {text.strip().splitlines()[-1][:300] if text.strip() else exc!r}",
                              where=str(ctx.input)) from exc
    ctx.output.write_bytes(blob)
    meta = {"variant": variant}
    if ctx.settings.get("quantization"):
        meta["quantization"] = ctx.settings["quantization"]
    return meta


register(Converter(
    name="tf_to_tflite", src=Format.SAVED_MODEL, dst=Format.TFLITE, run=_convert,
    tools=("tensorflow",), uses=("variant", "quantization"), cost=1.0,
    description="TFLiteConverter.from_saved_model, builtin ops only, per variant (int8/int16x8 calibrated)"))
