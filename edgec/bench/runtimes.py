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
    handle: object = None          # the runner (edgec.runtime), kept alive while it is timed


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


def tflite_session(path: Path, threads: int, delegate: str, npz: str | None, seed: int) -> tuple[Session, str]:
    """The model in ``edgec.runtime.tflite.TFLite`` with its inputs set; ``invoke`` is the
    interpreter's own. A custom op without a kernel is the runner's ``UnsupportedOpsError``."""
    from edgec.logs import captured
    from edgec.runtime.tflite import TFLite

    notes = []
    used = "xnnpack"
    if delegate == "none":
        used = "none (reference kernels)"
    elif delegate in ("gpu", "nnapi"):
        notes.append(f"the {delegate} delegate does not exist on this machine: measured on the CPU with XNNPACK")
        used = f"xnnpack (profile: {delegate})"
    runner = TFLite(path, delegate="none" if delegate == "none" else "default", threads=threads,
                    package="ai_edge_litert", signature=None)
    with captured():  # "INFO: Created TensorFlow Lite XNNPACK delegate for CPU."
        runner.load()
    specs = [TensorSpec(t.name, t.shape, t.dtype) for t in runner.inputs()]
    feed, source = make_inputs(specs, npz, seed)
    runner.set_inputs(feed)
    rows = [{"name": s.name, "shape": list(s.shape), "dtype": s.dtype} for s in specs]
    return Session(runner.invoke, runner.package, runner.version, used, threads, rows, notes, runner), source


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
    """The model in ``edgec.runtime.onnxruntime.OnnxRuntime`` with its inputs set; ``invoke`` is
    ``session.run`` on them."""
    from edgec.runtime.onnxruntime import CPU, CUDA, OnnxRuntime

    runner = OnnxRuntime(path, threads=threads, providers=CUDA if delegate == "cuda" else CPU).load()
    if delegate == "cuda" and "CUDAExecutionProvider" not in runner.used_providers():
        raise DependencyError("ONNX Runtime did not take the CUDA execution provider", where=str(path),
                              hint="check the CUDA and cuDNN libraries onnxruntime-gpu needs")
    specs = [TensorSpec(t.name, tuple(d if isinstance(d, int) else 1 for d in t.shape), t.dtype)
             for t in runner.inputs()]
    feed, source = make_inputs(specs, npz, seed)
    runner.set_inputs(feed)
    rows = [{"name": s.name, "shape": list(s.shape), "dtype": s.dtype} for s in specs]
    dist = "onnxruntime-gpu" if delegate == "cuda" else "onnxruntime"
    return Session(runner.invoke, dist, runner.version, runner.used_providers()[0], threads, rows, [],
                   runner), source


def fp16_onnx(src: Path, dst: Path) -> Path:
    """An fp16 copy of an ONNX model for the CUDA EP (inputs/outputs stay float32)."""
    onnx = require("onnx", purpose="fp16 ONNX for the GPU")
    from onnxruntime.transformers.float16 import convert_float_to_float16

    model = convert_float_to_float16(onnx.load(str(src)), keep_io_types=True)
    onnx.save(model, str(dst))
    return dst
