"""Full-integer quantization settings for the SavedModel -> TFLite edge: ``int8`` (int8 weights,
per channel, and int8 activations, every op; input/output type float, int8 or uint8) and
``int16x8`` (int8 weights, int16 activations; ops without a 16x8 kernel stay float), both
calibrated on a representative dataset.

The representative dataset is written once per build as an ``.npz`` keyed by the SavedModel
signature's input names, in its layout (the layout permutation from ONNX -> TF applied). The step's
cache key carries the digest of those arrays and the I/O type, never the file's path.
"""

from __future__ import annotations

from pathlib import Path

import numpy as np

QUANT_VARIANTS = ("int8", "int16x8")


def needs_calibration(variant: str) -> bool:
    return variant in QUANT_VARIANTS


def key_settings(variant: str, io_type: str, calibration) -> dict:
    """What changes the quantized model: the variant's I/O type and the calibration samples."""
    return {"io_type": io_type if variant == "int8" else "float", "per_channel": True,
            "float_fallback": variant == "int16x8",
            "calibration_sha256": calibration.sha256, "calibration_samples": len(calibration.samples),
            "synthetic": calibration.synthetic}


def write_representative(calibration, io_map: dict, path: Path) -> Path:
    """Stack the calibration samples per SavedModel input, laid out as the SavedModel wants them."""
    arrays = {}
    for m in io_map["inputs"]:
        x = calibration.stacked(m["source"])
        perm = m.get("perm")
        if perm is not None and list(perm) != list(range(len(perm))) and x.ndim == len(perm) + 1:
            x = x.transpose([0] + [p + 1 for p in perm])
        arrays[m["name"]] = np.ascontiguousarray(x)
    with open(path, "wb") as f:
        np.savez(f, **arrays)
    return path


def _representative(path: Path):
    def gen():
        with np.load(path) as data:
            arrays = {k: data[k] for k in data.files}
        n = len(next(iter(arrays.values())))
        for i in range(n):
            yield {k: v[i] for k, v in arrays.items()}

    return gen


def configure(converter, variant: str, settings: dict, data: Path, tf) -> None:
    """Set up ``converter`` for a full-integer variant calibrated on ``data`` (an .npz)."""
    converter.optimizations = [tf.lite.Optimize.DEFAULT]
    converter.representative_dataset = _representative(Path(data))
    if variant == "int8":
        converter.target_spec.supported_ops = [tf.lite.OpsSet.TFLITE_BUILTINS_INT8]
        io = {"float": tf.float32, "int8": tf.int8, "uint8": tf.uint8}[settings.get("io_type", "float")]
        converter.inference_input_type = io
        converter.inference_output_type = io
    elif variant == "int16x8":
        # Ops without a 16x8 kernel (HARD_SWISH, ...) stay float, as TF's guide for 16x8 advises;
        # the model keeps float I/O.
        converter.target_spec.supported_ops = [
            tf.lite.OpsSet.EXPERIMENTAL_TFLITE_BUILTINS_ACTIVATIONS_INT16_WEIGHTS_INT8,
            tf.lite.OpsSet.TFLITE_BUILTINS]
    else:  # pragma: no cover - guarded by the caller
        raise ValueError(variant)
