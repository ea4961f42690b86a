"""ONNX -> TF SavedModel with onnx2tf.

edgec asks onnx2tf only for what it is needed for: the Keras graph (``disable_model_save``), and
writes the SavedModel itself with one ``serving_default`` signature whose inputs and outputs carry
the ONNX names (sanitized). onnx2tf's own TFLite export, which is most of its run time, is skipped;
TF->TFLite is its own, cached edge.
"""

from __future__ import annotations

import tempfile
from pathlib import Path

from edgec.errors import ConversionError, require
from edgec.formats import Format
from edgec.formats.layout import layout_name, layout_perm
from edgec.runtime.loaders import onnx_io, sanitize
from edgec.convert import Converter, StepContext, register
from edgec.convert._onnx2tf import run_onnx2tf


def _convert(ctx: StepContext) -> dict:
    tf = require("tensorflow", purpose="ONNX to TF SavedModel")
    with tempfile.TemporaryDirectory(prefix="edgec-onnx2tf-") as work:
        keras_model, onnx_model, log, resolved, rewrites = run_onnx2tf(ctx.input, Path(work), ctx.inputs,
                                                                       ctx.settings, disable_model_save=True)
        ctx.log.append(log)
        _, onnx_outs = onnx_io(onnx_model)
        layouts = getattr(keras_model, "onnx_output_layouts", {}) or {}
        in_names = [sanitize(s.name) for s in resolved]
        out_names = [sanitize(s.name) for s in onnx_outs]
        if len(keras_model.inputs) != len(resolved) or len(keras_model.outputs) != len(onnx_outs):
            raise ConversionError("onnx2tf's graph has a different number of inputs/outputs than the ONNX",
                                  where=str(ctx.input))
        sig = [tf.TensorSpec(t.shape, t.dtype, name=n) for t, n in zip(keras_model.inputs, in_names)]

        @tf.function(input_signature=sig)
        def serve(*xs):
            ys = keras_model(list(xs) if len(xs) > 1 else xs[0])
            if not isinstance(ys, (list, tuple)):
                ys = [ys]
            return {n: tf.identity(y, name=n) for n, y in zip(out_names, ys)}

        holder = tf.Module()
        # Track the variables the signature captures, not the Keras model: saving a Keras model makes
        # tf_keras serialize every layer's config, onnx2tf's constant weights included (minutes on a
        # 22 M-parameter transformer), for metadata the SavedModel's readers here never use.
        # ``keras_model.variables`` is not enough: onnx2tf builds some layers (a grouped convolution
        # it does not turn into a depthwise one: group > 1 and != channels, or unequal strides) with
        # TF's internal legacy Keras, which the tf_keras model does not track, and saving then fails
        # with "references an 'untracked' resource". The traced function knows every variable it reads.
        holder.variables_ = _captured_variables(serve, keras_model)
        holder.serve = serve
        try:
            tf.saved_model.save(holder, str(ctx.output), signatures={"serving_default": serve})
        except Exception as exc:
            raise ConversionError(f"writing the SavedModel failed: {str(exc)[:300]}", where=str(ctx.input)) from exc
        unranked = [n for t, n in zip(keras_model.outputs, out_names) if t.shape.rank is None]
        if unranked:
            raise ConversionError(f"onnx2tf's graph gives output(s) {', '.join(unranked)} no known rank",
                                  where=str(ctx.input), hint="give the model static input shapes (--input-shape)")
        io_map = {"inputs": [], "outputs": []}
        for spec, t, n in zip(resolved, keras_model.inputs, in_names):
            perm = layout_perm(spec.shape, tuple(t.shape))
            io_map["inputs"].append({"source": spec.name, "name": n, "shape": list(t.shape), "perm": perm,
                                     "layout": layout_name(perm, len(spec.shape))})
        for spec, t, n in zip(onnx_outs, keras_model.outputs, out_names):
            perm = layout_perm(spec.shape, tuple(t.shape), layouts.get(spec.name))
            io_map["outputs"].append({"source": spec.name, "name": n, "shape": list(t.shape), "perm": perm,
                                      "layout": layout_name(perm, len(spec.shape))})
        require("tf_keras").backend.clear_session()
    return {"io": io_map, "rewrites": rewrites}


def _captured_variables(fn, keras_model) -> list:
    seen, out = set(), []
    for v in list(fn.get_concrete_function().variables) + list(keras_model.variables):
        if id(v) not in seen:
            seen.add(id(v))
            out.append(v)
    return out


register(Converter(
    name="onnx_to_tf", src=Format.ONNX, dst=Format.SAVED_MODEL, run=_convert,
    tools=("onnx2tf", "tensorflow", "tf-keras", "onnx", "onnxsim"),
    uses=("input_shapes", "keep_layout", "onnx2tf"), cost=1.0,
    description="onnx2tf builds the Keras graph; edgec writes a SavedModel with the ONNX I/O names"))
