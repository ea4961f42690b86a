"""Sessions: an artifact loaded in a runtime with its inputs set, ready to be invoked by the timing
loop. ``invoke`` is the runtime's own call and nothing else (inputs are set once, as TFLite's
benchmark_model does), so the harness adds only the clock reads around it.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from pathlib import Path
from typing import Callable

import numpy as np

from edgec.errors import DependencyError, UsageError, require
from edgec.formats import TensorSpec


@dataclass
class Session:
    invoke: Callable[[], object]
    runtime: str
    runtime_version: str
    delegate: str
    threads: int
    inputs: list[dict] = field(default_factory=list)
    notes: list[str] = field(default_factory=list)
    handle: object = None          # the interpreter / InferenceSession, kept alive


def _version(dist: str) -> str:
    from importlib import metadata

    try:
        return metadata.version(dist)
    except metadata.PackageNotFoundError:
        return "not installed"


def make_inputs(specs: list[TensorSpec], npz: str | None, seed: int) -> tuple[dict, str]:
    """Inputs by name and a description of where they came from."""
    if npz:
        data = np.load(npz)
        missing = [s.name for s in specs if s.name not in data.files]
        if missing:
            raise UsageError(f"the inputs file lacks {', '.join(missing)} (has {', '.join(data.files)})", where=npz)
        return {s.name: np.asarray(data[s.name], dtype=s.dtype) for s in specs}, f"file {npz}"
    from edgec.runtime.loaders import random_inputs

    return random_inputs(specs, seed=seed), f"synthetic: seeded random (seed {seed}; normal for float, 0-99 for int)"


def refuse_custom_ops(path: Path) -> None:
    """A model with custom ops runs only where those kernels are registered (MediaPipe's graph
    runtime, an app's own resolver): name them instead of letting the interpreter fail."""
    from edgec.errors import UnsupportedOpsError
    from edgec.formats.tflite import read_tflite

    custom = read_tflite(path).custom_ops()
    if custom:
        raise UnsupportedOpsError("tflite runtime (ai-edge-litert)", custom, where=str(path),
                                  hint="these custom ops have no kernel in a stock TFLite interpreter; run the "
                                       "model where they are registered (e.g. MediaPipe), or replace them")


def tflite_session(path: Path, threads: int, delegate: str, npz: str | None, seed: int) -> tuple[Session, str]:
    from ai_edge_litert import interpreter as lite

    kwargs = {"num_threads": threads}
    notes = []
    used = "xnnpack"
    if delegate == "none":
        kwargs["experimental_op_resolver_type"] = lite.OpResolverType.BUILTIN_WITHOUT_DEFAULT_DELEGATES
        used = "none (reference kernels)"
    elif delegate in ("gpu", "nnapi"):
        notes.append(f"the {delegate} delegate does not exist on this machine: measured on the CPU with XNNPACK")
        used = f"xnnpack (profile: {delegate})"
    refuse_custom_ops(path)
    from edgec.logs import captured

    with captured():  # "INFO: Created TensorFlow Lite XNNPACK delegate for CPU."
        interp = lite.Interpreter(model_path=str(path), **kwargs)
        interp.allocate_tensors()
    details = interp.get_input_details()
    specs = [TensorSpec(d["name"], tuple(int(x) for x in d["shape"]), np.dtype(d["dtype"]).name) for d in details]
    feed, source = make_inputs(specs, npz, seed)
    for d in details:
        interp.set_tensor(d["index"], feed[d["name"]])
    rows = [{"name": s.name, "shape": list(s.shape), "dtype": s.dtype} for s in specs]
    return Session(interp.invoke, "ai-edge-litert", _version("ai-edge-litert"), used, threads, rows, notes,
                   interp), source


def cuda_status() -> tuple[bool, str]:
    """(available, why not) for ONNX Runtime's CUDA execution provider on this machine."""
    import os

    try:
        ort = require("onnxruntime", purpose="ONNX Runtime benchmarks")
    except DependencyError as exc:
        return False, exc.what
    providers = ort.get_available_providers()
    device = os.path.exists("/proc/driver/nvidia") or os.path.exists("/dev/nvidia0")
    if "CUDAExecutionProvider" in providers and device:
        return True, ""
    parts = []
    if "CUDAExecutionProvider" not in providers:
        parts.append(f"onnxruntime {ort.__version__} offers {', '.join(providers)} (no CUDAExecutionProvider: "
                     "install onnxruntime-gpu)")
    if not device:
        parts.append("no NVIDIA device is visible (/proc/driver/nvidia and /dev/nvidia0 absent)")
    return False, "no GPU here: " + "; ".join(parts)


def onnx_session(path: Path, threads: int, delegate: str, npz: str | None, seed: int) -> tuple[Session, str]:
    ort = require("onnxruntime", purpose="ONNX Runtime benchmarks")
    opts = ort.SessionOptions()
    opts.log_severity_level = 3
    opts.intra_op_num_threads = threads
    providers = ["CUDAExecutionProvider", "CPUExecutionProvider"] if delegate == "cuda" else ["CPUExecutionProvider"]
    sess = ort.InferenceSession(str(path), opts, providers=providers)
    if delegate == "cuda" and "CUDAExecutionProvider" not in sess.get_providers():
        raise DependencyError("ONNX Runtime did not take the CUDA execution provider", where=str(path),
                              hint="check the CUDA and cuDNN libraries onnxruntime-gpu needs")
    type_map = {"tensor(float)": "float32", "tensor(float16)": "float16", "tensor(int64)": "int64",
                "tensor(int32)": "int32", "tensor(uint8)": "uint8", "tensor(int8)": "int8", "tensor(bool)": "bool"}
    specs = [TensorSpec(i.name, tuple(d if isinstance(d, int) else 1 for d in i.shape), type_map.get(i.type, "float32"))
             for i in sess.get_inputs()]
    feed, source = make_inputs(specs, npz, seed)
    rows = [{"name": s.name, "shape": list(s.shape), "dtype": s.dtype} for s in specs]
    dist = "onnxruntime-gpu" if delegate == "cuda" else "onnxruntime"
    return Session(lambda: sess.run(None, feed), dist, ort.__version__, sess.get_providers()[0], threads, rows, [],
                   sess), source


def fp16_onnx(src: Path, dst: Path) -> Path:
    """An fp16 copy of an ONNX model for the CUDA EP (inputs/outputs stay float32)."""
    onnx = require("onnx", purpose="fp16 ONNX for the GPU")
    from onnxruntime.transformers.float16 import convert_float_to_float16

    model = convert_float_to_float16(onnx.load(str(src)), keep_io_types=True)
    onnx.save(model, str(dst))
    return dst
