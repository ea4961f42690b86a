"""PyTorch -> TFLite directly with litert-torch (Google's converter, through torch.export; no TensorFlow).

The family's pins cannot share edgec's venv, so the conversion runs in its own environment
(``edgec.convert.envs``, ``.venv-litert``) as a subprocess (``_litert_child.py``). The module reaches
the child as a ``.pt2``: edgec exports the eager module (``--factory`` or a trusted pickle) with
``torch.export`` here, where the user's code imports, and the child loads it with
``torch.export.load`` (the same torch runs on both sides), so the child never needs the model's
code. A ``.pt2`` source is re-exported from its ``module()`` the same way. TorchScript cannot take
this route: torch.export cannot read a ScriptModule (the route search says so, ``edgec.convert.routes``).

Layout: litert-torch keeps the module's NCHW inputs. Android and MediaPipe hand images over
channels-last, as the onnx2tf routes produce, so every 4-D float image input is wrapped with
``litert_torch.to_channel_last_io`` (one transpose in front of the module, which litert-torch's
layout pass usually folds away); ``--keep-layout`` keeps NCHW. The step records the layout and
the TRANSPOSE ops left in the TFLite.

Variants: fp32 comes from the converter; fp16 (float16 weights), dynamic_int8 and the calibrated
int8 / int16x8 come from ai-edge-quantizer recipes applied to that fp32 model, int8 calibrated on
the build's calibration data (the same samples the TFLiteConverter route uses). The static
recipes quantize the model's I/O as well; with ``--quant-io float`` (the default) the inputs and
outputs are left unquantized (``NO_QUANTIZE`` on INPUT/OUTPUT), with ``int8`` they are int8.
"""

from __future__ import annotations

import atexit
import shutil
import tempfile
from pathlib import Path

from edgec.errors import ConversionError, UnsupportedModelError, UnsupportedOpsError
from edgec.formats import Format, TensorSpec
from edgec.convert import Converter, StepContext, envs, register

ENV = "litert"
CHILD = Path(__file__).with_name("_litert_child.py")
RUNTIME_TFLITE = Path(__file__).resolve().parents[1] / "runtime" / "tflite.py"  # the child reads signatures with it
TIMEOUT_S = 1800.0
TOOLS = ("litert-torch", "torch", "ai-edge-quantizer", "ai-edge-litert", "litert-converter")
RECIPES = {"fp16": "float_casting (fp16 weights)", "dynamic_int8": "dynamic_wi8_afp32",
           "int8": "static_wi8_ai8", "int16x8": "static_wi8_ai16"}
NOT_TORCHSCRIPT = ("litert-torch converts through torch.export, which cannot read a TorchScript file "
                   "(a ScriptModule); TorchScript keeps the ONNX routes. Save the model with "
                   "torch.export.save (.pt2) or pass --factory to try litert-torch")

_FP32: dict[tuple, Path] = {}   # fp32 TFLite per (input, layout) in this process: quantized variants start there
_WORK: list[tempfile.TemporaryDirectory] = []


def channel_last_inputs(inputs: list[TensorSpec], keep_layout: bool) -> list[int]:
    """Indices of the inputs the TFLite takes channels-last (4-D float images, unless --keep-layout)."""
    from edgec.convert._onnx2tf import is_image_input

    if keep_layout:
        return []
    return [i for i, s in enumerate(inputs) if is_image_input(s) and s.dtype.startswith("float")]


def _workdir() -> Path:
    if not _WORK:
        _WORK.append(tempfile.TemporaryDirectory(prefix="edgec-litert-"))
        atexit.register(_WORK[0].cleanup)
    return Path(_WORK[0].name)


def _export_program(ctx: StepContext, fmt: Format, dst: Path) -> Path:
    """The source as a .pt2 the child can load without the model's code."""
    import torch

    from edgec.runtime.loaders import example_inputs, load_torch

    module = load_torch(ctx.input, fmt, trust_pickle=True)  # trust was checked when the source was probed
    args = tuple(example_inputs(ctx.inputs))
    try:
        program = torch.export.export(module, args, strict=False)
        torch.export.save(program, str(dst))
    except Exception as exc:  # torch.export raises many types; its first line names the problem
        first = (str(exc).strip().splitlines() or [type(exc).__name__])[0]
        raise UnsupportedModelError(f"torch.export cannot export the module for litert-torch: "
                                    f"{type(exc).__name__}: {first[:300]}", where=str(ctx.input),
                                    hint="litert-torch needs a module torch.export can trace; the ONNX routes "
                                         "may still convert it") from exc
    return dst


def _child(task: dict, ctx: StepContext, what: str) -> dict:
    task = {**task, "tflite_runner": str(RUNTIME_TFLITE)}
    res = envs.run(envs.get(ENV), CHILD, task, timeout=TIMEOUT_S, what=what, where=str(ctx.input))
    if res.get("stderr_tail"):
        ctx.log.append(res["stderr_tail"])
    if res.get("ok"):
        return res
    message = res.get("message", "(no message)")
    if res.get("kind") == "unsupported":
        raise UnsupportedOpsError(f"torch->tflite (litert-torch, {task['variant']})",
                                  {op: ["(torch.export graph)"] for op in res.get("ops", [])}, where=str(ctx.input),
                                  hint="litert-torch cannot lower these ops; the ONNX routes may convert the model")
    first = message.splitlines()[0] if message else "(no message)"
    raise ConversionError(f"{what} failed: {first[:400]}", where=str(ctx.input),
                          hint="run with --debug; the ONNX routes may still convert the model")


def _fp32(ctx: StepContext, fmt: Format, nhwc: list[int], output: Path) -> dict:
    work = Path(tempfile.mkdtemp(prefix="fp32-", dir=_workdir()))
    program = _export_program(ctx, fmt, work / "program.pt2")
    res = _child({"variant": "fp32", "program": str(program), "output": str(output), "nhwc": nhwc}, ctx,
                 "litert_torch.convert")
    program.unlink(missing_ok=True)
    keep = work / "model_fp32.tflite"
    shutil.copyfile(output, keep)
    _FP32[_memo_key(ctx, nhwc)] = keep
    return res


def _memo_key(ctx: StepContext, nhwc: list[int]) -> tuple:
    st = Path(ctx.input).stat()
    return (str(ctx.input), st.st_size, st.st_mtime_ns, tuple(nhwc),
            tuple((s.name, tuple(s.shape), s.dtype) for s in ctx.inputs))


def _quantized(ctx: StepContext, fmt: Format, variant: str, nhwc: list[int], sig: dict) -> dict:
    from edgec.runtime.loaders import sanitize

    float_model = _FP32.get(_memo_key(ctx, nhwc))
    if float_model is None or not float_model.is_file():  # the fp32 step came from the cache
        float_model = Path(tempfile.mkdtemp(prefix="fp32-", dir=_workdir())) / "model_fp32.tflite"
        sig = _fp32(ctx, fmt, nhwc, float_model)["signature"]
    task = {"variant": variant, "float_model": str(float_model), "output": str(ctx.output), "nhwc": nhwc,
            "signature": sig["key"], "signature_inputs": sig["inputs"]}
    if variant in ("int8", "int16x8"):
        quant = ctx.settings.get("quantization") or {}
        data = ctx.resources.get("calibration")
        if not data or not quant:
            raise ConversionError(f"variant '{variant}' needs calibration data and none reached the converter",
                                  hint="pass --calibration-data PATH (or --synthetic-calibration)")
        io_type = quant.get("io_type", "float")
        if io_type not in ("float", "int8"):
            raise UnsupportedModelError(f"ai-edge-quantizer makes float or int8 inputs and outputs; --quant-io "
                                        f"{io_type} is not available on the litert-torch route", where=str(ctx.input),
                                        hint="build --quant-io float or int8, or take the TFLiteConverter route")
        task.update(calibration=str(data), calibration_keys=[sanitize(s.name) for s in ctx.inputs], io_type=io_type)
    return _child(task, ctx, f"ai-edge-quantizer ({RECIPES[variant]})")


def _convert(ctx: StepContext, fmt: Format) -> dict:
    from edgec.formats.tflite import read_tflite

    variant = ctx.settings.get("variant", "fp32")
    if variant not in ("fp32", *RECIPES):
        raise ConversionError(f"variant '{variant}' is not produced by the litert-torch edge",
                              hint=f"choose from fp32, {', '.join(RECIPES)}")
    envs.require_env(envs.get(ENV))  # before exporting anything: a missing env is a clear error
    nhwc = channel_last_inputs(ctx.inputs, bool(ctx.settings.get("keep_layout")))
    if variant == "fp32":
        res = _fp32(ctx, fmt, nhwc, ctx.output)
    else:
        sig = _signature_of(_FP32.get(_memo_key(ctx, nhwc)))
        res = _quantized(ctx, fmt, variant, nhwc, sig)
    info = read_tflite(ctx.output)
    sig = res["signature"]
    flex = info.custom_ops()
    if flex:
        raise UnsupportedOpsError(f"torch->tflite (litert-torch, {variant})", flex, where=str(ctx.input),
                                  hint="these became custom ops that the target runtime cannot run")
    hist = info.histogram
    meta = {"variant": variant, "family": "litert-torch", "environment": ENV,
            "converter_versions": res.get("versions", {}), "child_seconds": res.get("seconds"),
            "input_layout": "NHWC (litert_torch.to_channel_last_io)" if nhwc else "as the module takes it",
            "transposes": int(hist.get("TRANSPOSE", 0)), "op_histogram": hist,
            "io": _io_map(ctx.inputs, info, sig, nhwc), "outputs": _outputs(info, sig)}
    if variant != "fp32":
        meta["recipe"] = RECIPES[variant]
    if ctx.settings.get("quantization"):
        meta["quantization"] = ctx.settings["quantization"]
    return meta


def _signature_of(path: Path | None) -> dict:
    if path is None or not path.is_file():
        return {}
    from edgec.formats.tflite import read_tflite

    sigs = read_tflite(path).signatures
    key = "serving_default" if "serving_default" in sigs else next(iter(sigs), None)
    if key is None:
        return {}
    return {"key": key, "inputs": list(sigs[key]["inputs"]), "outputs": list(sigs[key]["outputs"])}


def _io_map(inputs: list[TensorSpec], info, sig: dict, nhwc: list[int]) -> dict:
    """Source input i -> the signature's i-th input (litert-torch names them args_0, args_1, ...)."""
    from edgec.formats.layout import layout_name

    tensors = {t.name: t for t in info.inputs + info.outputs}
    sig_io = info.signatures.get(sig.get("key") or "serving_default", {"inputs": {}, "outputs": {}})
    rows = []
    for i, (spec, name) in enumerate(zip(inputs, sig.get("inputs", []))):
        rank = len(spec.shape)
        perm = [0, *range(2, rank), 1] if i in nhwc else list(range(rank))
        t = tensors.get(sig_io["inputs"].get(name, ""))
        rows.append({"source": spec.name, "name": name, "shape": list(t.shape) if t else None, "perm": perm,
                     "layout": layout_name(perm, rank)})
    outs = []
    for i, name in enumerate(sig.get("outputs", [])):
        t = tensors.get(sig_io["outputs"].get(name, ""))
        rank = len(t.shape) if t else 0
        outs.append({"source": _out_name(i, len(sig["outputs"])), "name": name,
                     "shape": list(t.shape) if t else None, "perm": list(range(rank)), "layout": None})
    return {"inputs": rows, "outputs": outs}


def _out_name(i: int, n: int) -> str:
    return "output" if n == 1 else f"output_{i}"  # the names the torch -> ONNX edge gives


def _outputs(info, sig: dict) -> list[dict]:
    tensors = {t.name: t for t in info.outputs}
    sig_io = info.signatures.get(sig.get("key") or "serving_default", {"outputs": {}})
    out = []
    for i, name in enumerate(sig.get("outputs", [])):
        t = tensors.get(sig_io["outputs"].get(name, ""))
        out.append(TensorSpec(_out_name(i, len(sig["outputs"])), tuple(t.shape) if t else (),
                              t.dtype if t else "float32").to_dict())
    return out


def _edge(fmt: Format, desc: str) -> Converter:
    return register(Converter(
        name=f"{fmt.value}_to_tflite", src=fmt, dst=Format.TFLITE, run=lambda ctx: _convert(ctx, fmt),
        tools=TOOLS, uses=("input_shapes", "keep_layout", "variant", "quantization"), cost=4.0,
        description=desc, env=ENV, calibrates=True))


_edge(Format.EXPORTED_PROGRAM, "litert-torch (torch.export -> TFLite, its own venv) of an ExportedProgram")
_edge(Format.TORCH_MODULE, "litert-torch (torch.export -> TFLite, its own venv) of an eager nn.Module")
