"""The litert-torch converter, run inside its own environment (``.venv-litert``).

This file is executed by that environment's interpreter as a script (``python _litert_child.py
TASK.json RESULT.json``); it imports nothing from edgec (edgec's TFLite runner, which reads the
result's signature, is loaded from its file, ``task["tflite_runner"]``), because edgec's own
environment and this one cannot share a venv (numpy 2 / protobuf 7 / ai-edge-litert 2.3 here). edgec's side is
``edgec.convert.litert_torch``. The task names a ``.pt2`` ExportedProgram (``torch.export.save``;
both environments run the same torch), the variant, and for quantized variants the fp32 TFLite
and the calibration samples. The result is JSON: the signature's input/output names, the tool
versions, or the error (its kind, message, the ops it names).
"""

from __future__ import annotations

import json
import re
import sys
import time
import traceback
from pathlib import Path

TOOLS = ("litert-torch", "torch", "ai-edge-quantizer", "ai-edge-litert", "litert-converter", "numpy")

FP16_RECIPE = [{"regex": ".*", "operation": "*", "algorithm_key": "float_casting",
                "op_config": {"weight_tensor_config": {"num_bits": 16, "dtype": "FLOAT"},
                              "compute_precision": "FLOAT", "explicit_dequantize": True}}]


def versions() -> dict:
    from importlib import metadata

    out = {}
    for d in TOOLS:
        try:
            out[d] = metadata.version(d)
        except metadata.PackageNotFoundError:
            out[d] = "not installed"
    return out


def convert_fp32(task: dict, output: Path) -> None:
    import torch
    import litert_torch

    program = torch.export.load(task["program"])
    module = program.module()
    args = tuple(program.example_inputs[0]) if program.example_inputs else None
    if args is None:
        raise ValueError("the ExportedProgram carries no example inputs")
    nhwc = list(task.get("nhwc") or [])
    if nhwc:
        # The TFLite takes these inputs channels-last, as Android/MediaPipe hand images over; the
        # module sees them channels-first again after one transpose (the Transpose count says).
        module = litert_torch.to_channel_last_io(module, args=nhwc)
        args = tuple(a.permute(0, *range(2, a.dim()), 1).contiguous() if i in nhwc else a
                     for i, a in enumerate(args))
    edge = litert_torch.convert(module, args)
    edge.export(str(output))


def quantize(task: dict, output: Path) -> None:
    import numpy as np
    from ai_edge_quantizer import qtyping, quantizer, recipe

    variant = task["variant"]
    qt = quantizer.Quantizer(task["float_model"])
    if variant == "fp16":
        qt.load_quantization_recipe(FP16_RECIPE)
    elif variant == "dynamic_int8":
        qt.load_quantization_recipe(recipe.dynamic_wi8_afp32())
    elif variant == "int8":
        qt.load_quantization_recipe(recipe.static_wi8_ai8())
    elif variant == "int16x8":
        qt.load_quantization_recipe(recipe.static_wi8_ai16())
    else:
        raise ValueError(f"unknown variant {variant!r}")
    if variant in ("int8", "int16x8") and task.get("io_type", "float") == "float":
        # The static recipes quantize the model's inputs and outputs too; edgec's default (and the
        # TFLiteConverter route's) is float I/O with the quantize/dequantize inside the model.
        for op in ("INPUT", "OUTPUT"):
            qt.update_quantization_recipe(regex=".*", operation_name=getattr(qtyping.TFLOperationName, op),
                                          algorithm_key=quantizer.AlgorithmName.NO_QUANTIZE)
    calibration = None
    if variant in ("int8", "int16x8"):
        names = task["signature_inputs"]           # the TFLite's input names, in the source's order
        nhwc = set(task.get("nhwc") or [])
        with np.load(task["calibration"]) as data:
            arrays = [data[k] for k in task["calibration_keys"]]
        samples = []
        for i in range(len(arrays[0])):
            feed = {}
            for j, (name, arr) in enumerate(zip(names, arrays)):
                x = arr[i]
                if j in nhwc:
                    x = x.transpose(0, *range(2, x.ndim), 1)
                feed[name] = np.ascontiguousarray(x)
            samples.append(feed)
        calibration = qt.calibrate({task["signature"]: samples}, num_threads=int(task.get("threads") or 2))
    result = qt.quantize(calibration, enable_progress_bar=False, enable_progress_report=False)
    tmp = output.with_name(output.name + ".part")
    tmp.write_bytes(bytes(result.quantized_model))
    tmp.replace(output)


def runtime_tflite(path: str):
    """edgec's TFLite runner (``edgec/runtime/tflite.py``: numpy and a TFLite package only), loaded
    from the file the task names: this environment does not import edgec."""
    import importlib.util

    spec = importlib.util.spec_from_file_location("edgec_runtime_tflite", path)
    mod = importlib.util.module_from_spec(spec)
    sys.modules[spec.name] = mod  # dataclasses look their module up while the class is made
    spec.loader.exec_module(mod)
    return mod


def signature(path: Path, runner_file: str) -> dict:
    runner = runtime_tflite(runner_file).TFLite(path, package="ai_edge_litert", allocate=False)
    try:
        sigs = runner.signatures()
    finally:
        runner.close()
    key = "serving_default" if "serving_default" in sigs else next(iter(sigs), None)
    if key is None:
        return {"key": None, "inputs": [], "outputs": []}
    return {"key": key, "inputs": list(sigs[key]["inputs"]), "outputs": list(sigs[key]["outputs"])}


def failure(exc: BaseException) -> dict:
    text = f"{type(exc).__name__}: {exc}"
    ops = sorted(set(re.findall(r"failed to legalize operation '([\w.]+)'", text)) |
                 set(re.findall(r"(aten\.[\w.]+) (?:is not|not) (?:supported|lowered)", text)) |
                 set(re.findall(r"[Nn]o lowering (?:found )?for (aten\.[\w.]+)", text)))
    kind = "unsupported" if ops else "conversion"
    if isinstance(exc, MemoryError):
        kind = "conversion"
    return {"ok": False, "kind": kind, "message": text.strip()[:4000], "ops": ops,
            "traceback": traceback.format_exc()[-6000:]}


def main(argv: list[str]) -> int:
    task = json.loads(Path(argv[1]).read_text())
    result_path = Path(argv[2])
    output = Path(task["output"])
    t0 = time.perf_counter()
    try:
        if task.get("check"):
            import litert_torch, ai_edge_quantizer, torch  # noqa: F401  (doctor: do they import?)

            result = {"ok": True}
        else:
            if task["variant"] == "fp32":
                convert_fp32(task, output)
            else:
                quantize(task, output)
            result = {"ok": True, "signature": signature(output, task["tflite_runner"])}
    except BaseException as exc:  # noqa: BLE001 - every failure goes back to edgec as data
        result = failure(exc)
    result["versions"] = versions()
    result["seconds"] = round(time.perf_counter() - t0, 3)
    tmp = result_path.with_name(result_path.name + ".part")
    tmp.write_text(json.dumps(result))
    tmp.replace(result_path)
    return 0


if __name__ == "__main__":
    main(sys.argv)
