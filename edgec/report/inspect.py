"""``edgec inspect``: format, inputs/outputs, op histogram, parameter count and bytes, for every format."""

from __future__ import annotations

from collections import Counter
from pathlib import Path

from edgec.formats import Format, detect_format, size_of
from edgec.runtime.loaders import (keras_io, load_keras, load_onnx, load_torch, onnx_io, saved_model_io,
                      _torchscript_recorded_specs, _forward_arg_names)


def inspect_model(path, *, trust_pickle: bool = False) -> dict:
    path = Path(path)
    fmt = detect_format(path)
    fn = {Format.TFLITE: _tflite, Format.ONNX: _onnx, Format.TORCHSCRIPT: _torchscript,
          Format.EXPORTED_PROGRAM: _exported, Format.TORCH_MODULE: _pickle,
          Format.SAVED_MODEL: _saved_model, Format.KERAS: _keras}[fmt]
    info = fn(path, trust_pickle) if fmt is Format.TORCH_MODULE else fn(path)
    info = {"path": str(path), "format": fmt.value, "file_bytes": size_of(path), **info}
    info["op_histogram"] = dict(Counter(info.pop("ops")).most_common())
    info["op_count"] = sum(info["op_histogram"].values())
    return info


def _specs(specs) -> list[dict]:
    return [s.to_dict() for s in specs]


def _tflite(path: Path) -> dict:
    from edgec.formats.tflite import read_tflite

    t = read_tflite(path)
    from edgec.formats.metadata.reader import read_metadata

    meta, files = read_metadata(path)  # the official TFLite metadata, if the model carries it
    return {"inputs": _specs(t.inputs), "outputs": _specs(t.outputs), "ops": [n for n, _ in t.ops],
            "op_versions": sorted({f"{n}:v{v}" for n, v in t.ops}), "parameters": t.params,
            "parameter_bytes": t.weight_bytes, "signatures": list(t.signatures),
            "metadata": meta.to_dict() if meta else None,
            "associated_files": {n: len(b) for n, b in files.items()}}


def _onnx(path: Path) -> dict:
    import numpy as np
    from onnx import numpy_helper  # noqa: F401  (import check only)

    m = load_onnx(path)
    ins, outs = onnx_io(m)
    params = sum(int(np.prod(i.dims)) if i.dims else 1 for i in m.graph.initializer)
    nbytes = sum(len(i.raw_data) if i.raw_data else 0 for i in m.graph.initializer)
    if nbytes == 0 and params:
        from onnx import numpy_helper as nh

        nbytes = sum(nh.to_array(i).nbytes for i in m.graph.initializer)
    opsets = {o.domain or "ai.onnx": o.version for o in m.opset_import}
    return {"inputs": _specs(ins), "outputs": _specs(outs),
            "ops": [n.op_type if n.domain in ("", "ai.onnx") else f"{n.domain}::{n.op_type}" for n in m.graph.node],
            "parameters": params, "parameter_bytes": nbytes, "opsets": opsets,
            "producer": f"{m.producer_name} {m.producer_version}".strip()}


def _torch_params(module) -> tuple[int, int]:
    tensors = list(module.state_dict().values())
    return sum(t.numel() for t in tensors), sum(t.numel() * t.element_size() for t in tensors)


def _torchscript(path: Path) -> dict:
    m = load_torch(path, Format.TORCHSCRIPT)
    recorded = _torchscript_recorded_specs(path)
    names = _forward_arg_names(m)
    ins = [recorded[n].to_dict() if n in recorded else {"name": n, "shape": None, "dtype": None, "layout": None}
           for n in names]
    ops = [n.kind() for n in m.inlined_graph.nodes()
           if not n.kind().startswith("prim::") or n.kind() in ("prim::PythonOp",)]
    params, nbytes = _torch_params(m)
    return {"inputs": ins, "outputs": [], "ops": ops, "parameters": params, "parameter_bytes": nbytes,
            "note": None if recorded else "TorchScript does not record input shapes: build with --input-shape"}


def _exported(path: Path) -> dict:
    import torch

    from edgec.runtime.loaders import _exported_program_specs

    ep = torch.export.load(str(path))
    ops = [str(n.target) for n in ep.graph.nodes if n.op == "call_function"]
    sd = ep.state_dict
    params = sum(t.numel() for t in sd.values())
    nbytes = sum(t.numel() * t.element_size() for t in sd.values())
    return {"inputs": [s.to_dict() for s in _exported_program_specs(path).values()], "outputs": [],
            "ops": ops, "parameters": params, "parameter_bytes": nbytes}


def _pickle(path: Path, trust: bool) -> dict:
    m = load_torch(path, Format.TORCH_MODULE, trust_pickle=trust)
    ops = [type(x).__name__ for x in m.modules() if not list(x.children())]
    params, nbytes = _torch_params(m)
    return {"inputs": [{"name": n, "shape": None, "dtype": None, "layout": None} for n in _forward_arg_names(m)],
            "outputs": [], "ops": ops, "parameters": params, "parameter_bytes": nbytes}


def _saved_model(path: Path) -> dict:
    loaded, ins, outs = saved_model_io(path)
    fn = loaded.signatures["serving_default"]
    gd = fn.graph.as_graph_def()
    ops = [n.op for n in gd.node]
    for f in gd.library.function:
        ops.extend(n.op for n in f.node_def)
    skip = {"Placeholder", "Identity", "NoOp", "StatefulPartitionedCall", "PartitionedCall", "ReadVariableOp",
            "Const", "_Arg", "_Retval"}
    variables = list(getattr(loaded, "variables", []) or [])
    params = sum(int(v.shape.num_elements() or 0) for v in variables)
    nbytes = sum(int(v.shape.num_elements() or 0) * v.dtype.size for v in variables)
    # Weights folded into the graph as constants (onnx2tf's graphs carry them this way).
    for node in list(gd.node) + [n for f in gd.library.function for n in f.node_def]:
        if node.op == "Const" and "value" in node.attr:
            t = node.attr["value"].tensor
            n = 1
            for d in t.tensor_shape.dim:
                n *= max(int(d.size), 0)
            if n > 1:
                params += n
                nbytes += len(t.tensor_content) or n * 4
    return {"inputs": _specs(ins), "outputs": _specs(outs), "ops": [o for o in ops if o not in skip],
            "parameters": params, "parameter_bytes": nbytes}


def _keras(path: Path) -> dict:
    m = load_keras(path)
    ins, outs = keras_io(m)
    ops = [type(layer).__name__ for layer in m.layers if type(layer).__name__ != "InputLayer"]
    nbytes = sum(int(w.numpy().nbytes) for w in m.weights)
    return {"inputs": _specs(ins), "outputs": _specs(outs), "ops": ops, "parameters": int(m.count_params()),
            "parameter_bytes": nbytes}


def render_text(info: dict) -> str:
    lines = [f"{info['path']}: {info['format']}, {info['file_bytes']:,} bytes"]
    for kind in ("inputs", "outputs"):
        for s in info.get(kind, []):
            shape = "x".join("?" if d is None else str(d) for d in s["shape"]) if s["shape"] is not None else "?"
            lines.append(f"  {kind[:-1]:6} {s['name']}: {shape} {s['dtype'] or ''}".rstrip())
    lines.append(f"  parameters: {info['parameters']:,} ({info['parameter_bytes']:,} bytes)")
    hist = ", ".join(f"{k} x{v}" for k, v in list(info["op_histogram"].items())[:25])
    more = len(info["op_histogram"]) - 25
    lines.append(f"  ops ({info['op_count']}): {hist}{' ...and %d more types' % more if more > 0 else ''}")
    for k in ("opsets", "producer", "signatures", "note"):
        if info.get(k):
            lines.append(f"  {k}: {info[k]}")
    if info.get("metadata"):
        from edgec.formats.metadata.reader import render_lines

        lines += render_lines(info["metadata"], info.get("associated_files") or {})
    return "\n".join(lines)
