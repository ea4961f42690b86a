"""Keras (.keras / .h5) -> TF SavedModel with a ``serving_default`` signature."""

from __future__ import annotations

from edgec.errors import ConversionError, require
from edgec.formats import Format
from edgec.runtime.loaders import keras_io, load_keras, sanitize
from edgec.convert import Converter, StepContext, register


def _convert(ctx: StepContext) -> dict:
    tf = require("tensorflow", purpose="Keras to SavedModel")
    model = load_keras(ctx.input)
    ins, outs = keras_io(model)
    sig = [tf.TensorSpec(s.shape, s.dtype, name=sanitize(s.name)) for s in ins]
    out_names = [sanitize(s.name) for s in outs]

    keras = require("keras")

    def serve(*xs):
        ys = model(list(xs) if len(xs) > 1 else xs[0], training=False)
        ys = list(ys.values()) if isinstance(ys, dict) else ys
        ys = ys if isinstance(ys, (list, tuple)) else [ys]
        return {n: y for n, y in zip(out_names, ys)}

    # Keras' own ExportArchive tracks Keras 3 variables so TFLiteConverter can freeze them (a plain
    # tf.Module holder leaves them as uninitialized resource variables in the .tflite).
    archive = keras.export.ExportArchive()
    archive.track(model)
    archive.add_endpoint(name="serving_default", fn=serve, input_signature=sig)
    try:
        archive.write_out(str(ctx.output), verbose=False)
    except Exception as exc:
        raise ConversionError(f"writing the SavedModel failed: {str(exc)[:300]}", where=str(ctx.input)) from exc
    io_map = {"inputs": [{"source": s.name, "name": sanitize(s.name), "shape": list(s.shape),
                          "perm": list(range(len(s.shape))), "layout": None} for s in ins],
              "outputs": [{"source": s.name, "name": n, "shape": list(s.shape),
                           "perm": list(range(len(s.shape))), "layout": None} for s, n in zip(outs, out_names)]}
    return {"io": io_map}


register(Converter(
    name="keras_to_tf", src=Format.KERAS, dst=Format.SAVED_MODEL, run=_convert,
    tools=("tensorflow", "keras"), uses=(), cost=1.0,
    description="keras.models.load_model, then tf.saved_model.save with a serving signature"))
