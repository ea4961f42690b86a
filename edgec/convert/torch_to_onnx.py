"""PyTorch -> ONNX with torch.onnx.export.

TorchScript (``.pt``) goes through the TorchScript exporter (the only one that takes a ScriptModule);
ExportedProgram (``.pt2``) and eager modules go through the dynamo exporter at opset 20, which
writes ``Gelu`` as one op. The exporter and opset used are recorded in the step's metadata.
"""

from __future__ import annotations

import contextlib
import io
import warnings

from edgec.errors import ConversionError, UnsupportedOpsError
from edgec.formats import Format
from edgec.runtime.loaders import load_torch, example_inputs
from edgec.runtime.torch import flatten
from edgec.convert import Converter, StepContext, register

DYNAMO_OPSET = 20
LEGACY_OPSET = 17


def _pick_exporter(fmt: Format, requested: str) -> str:
    if fmt is Format.TORCHSCRIPT:
        return "legacy"
    return "dynamo" if requested in ("auto", "dynamo") else "legacy"


def _export(ctx: StepContext, fmt: Format) -> dict:
    import torch

    model = load_torch(ctx.input, fmt, trust_pickle=True)  # trust was checked when the source was probed
    exporter = _pick_exporter(fmt, ctx.settings.get("exporter", "auto"))
    opset = ctx.settings.get("opset") or (DYNAMO_OPSET if exporter == "dynamo" else LEGACY_OPSET)
    args = example_inputs(ctx.inputs)
    names = [s.name for s in ctx.inputs]
    with torch.no_grad():
        n_out = len(flatten(model(*args)))
    out_names = ["output"] if n_out == 1 else [f"output_{i}" for i in range(n_out)]
    buf = io.StringIO()
    try:
        with warnings.catch_warnings(), contextlib.redirect_stdout(buf):
            warnings.simplefilter("ignore")
            if exporter == "dynamo":
                torch.onnx.export(model, tuple(args), str(ctx.output), input_names=names, output_names=out_names,
                                  opset_version=opset, dynamo=True, external_data=False, optimize=True, verbose=False)
            else:
                torch.onnx.export(model, tuple(args), str(ctx.output), input_names=names, output_names=out_names,
                                  opset_version=opset, dynamo=False, do_constant_folding=True)
    except Exception as exc:  # torch raises many types; keep the message, name the ops
        raise _export_error(exc, ctx, exporter) from exc
    ctx.log.append(buf.getvalue())
    from edgec.runtime.loaders import load_onnx, onnx_io

    outputs = [s.to_dict() for s in onnx_io(load_onnx(ctx.output))[1]]
    return {"exporter": exporter, "opset": opset, "outputs": outputs}


def _export_error(exc: Exception, ctx: StepContext, exporter: str):
    import re

    text = str(exc)
    unsupported = {}
    for m in re.finditer(r"ONNX export of operator ([\w.:]+)", text):
        unsupported.setdefault(m.group(1), []).append("(torch graph)")
    for m in re.finditer(r"'?(aten::[\w.]+|aten\.[\w.]+)'?", text):
        if "nsupported" in text or "not supported" in text:
            unsupported.setdefault(m.group(1), []).append("(torch graph)")
    if unsupported:
        return UnsupportedOpsError(f"torch->onnx ({exporter} exporter)", unsupported, where=str(ctx.input),
                                   hint="replace these ops in the model, or export ONNX yourself and pass the .onnx")
    first = text.strip().splitlines()[0] if text.strip() else type(exc).__name__
    return ConversionError(f"torch.onnx.export ({exporter}) failed: {first[:400]}", where=str(ctx.input),
                           hint="try --exporter legacy or --exporter dynamo, or run with --debug")


def _edge(fmt: Format, desc: str) -> Converter:
    return register(Converter(
        name=f"{fmt.value}_to_onnx", src=fmt, dst=Format.ONNX,
        run=lambda ctx: _export(ctx, fmt), tools=("torch", "onnx", "onnxscript"),
        uses=("exporter", "opset"), cost=1.0, description=desc))


_edge(Format.TORCHSCRIPT, "torch.onnx.export (TorchScript exporter) of a torch.jit module")
_edge(Format.EXPORTED_PROGRAM, "torch.onnx.export (dynamo exporter) of a torch.export ExportedProgram")
_edge(Format.TORCH_MODULE, "torch.onnx.export (dynamo exporter) of an eager nn.Module")
