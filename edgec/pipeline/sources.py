"""Turning what the user gave into a source artifact, and reading its inputs and outputs."""

from __future__ import annotations

import tempfile
from pathlib import Path

from edgec.pipeline.cache import Cache
from edgec.errors import UsageError
from edgec.formats import Artifact, Format
from edgec.runtime.loaders import (call_factory, check_runtime_versions, keras_io, load_keras, load_onnx, load_torch, onnx_io, resolve_shapes,
                      saved_model_io, torch_input_specs)


def materialize_factory(spec: str, cache: Cache) -> Artifact:
    """Build the module from code and save it (a pickle the user's own code made) so that the rest
    of the pipeline, and its cache, works on bytes like for any model file."""
    import json

    import torch

    module, example = call_factory(spec)
    tmp = Path(tempfile.mkdtemp(prefix="edgec-factory-", dir=cache.root / "tmp"))
    path = tmp / "module.pt"
    torch.save(module, str(path))
    if example is not None:
        (tmp / "example.json").write_text(json.dumps([list(t.shape) for t in example]))
    art = Artifact(path, Format.TORCH_MODULE, meta={"sha256": module_digest(module, spec, example),
                                                    "factory": spec})
    art.meta["module"] = module
    art.meta["example"] = example
    return art


def module_digest(module, spec: str, example) -> str:
    """A stable identity for a module built from code: torch.save bytes differ run to run, so hash
    the factory, the module's structure and every parameter/buffer's bytes instead."""
    import hashlib

    h = hashlib.sha256(f"{spec}\n{type(module).__module__}.{type(module).__qualname__}\n{module!r}".encode())
    for name, t in sorted(module.state_dict().items()):
        h.update(f"{name}:{tuple(t.shape)}:{t.dtype}".encode())
        h.update(t.detach().contiguous().cpu().numpy().tobytes())
    for t in example or ():
        h.update(f"example:{tuple(t.shape)}:{t.dtype}".encode())
    return h.hexdigest()


def probe(src: Artifact, cfg) -> dict:
    """Inputs (static, source layout) and, where the format states them, outputs."""
    shapes = dict(cfg.input_shapes)
    dtypes = dict(cfg.input_dtypes)
    fmt = src.format
    if fmt in (Format.TORCHSCRIPT, Format.EXPORTED_PROGRAM, Format.TORCH_MODULE):
        module = src.meta.get("module") or load_torch(src.path, fmt, trust_pickle=True)
        specs = torch_input_specs(module, src.path if not src.meta.get("factory") else None, fmt, shapes, dtypes,
                                  src.meta.get("example"))
        return {"inputs": [s.to_dict() for s in specs], "outputs": []}
    if fmt is Format.ONNX:
        model = load_onnx(src.path)
        check_runtime_versions(model, str(src.path))
        ins, outs = onnx_io(model)
        return {"inputs": [s.to_dict() for s in resolve_shapes(ins, shapes, dtypes, str(src.path))],
                "outputs": [s.to_dict() for s in outs]}
    if fmt is Format.SAVED_MODEL:
        _, ins, outs = saved_model_io(src.path)
        return {"inputs": [s.to_dict() for s in resolve_shapes(ins, shapes, dtypes, str(src.path))],
                "outputs": [s.to_dict() for s in outs]}
    if fmt is Format.KERAS:
        ins, outs = keras_io(load_keras(src.path))
        return {"inputs": [s.to_dict() for s in resolve_shapes(ins, shapes, dtypes, str(src.path))],
                "outputs": [s.to_dict() for s in outs]}
    if fmt is Format.TFLITE:
        from edgec.formats.tflite import read_tflite

        info = read_tflite(src.path)
        return {"inputs": [s.to_dict() for s in info.inputs], "outputs": [s.to_dict() for s in info.outputs]}
    raise UsageError(f"cannot read inputs of {fmt.value}")
