"""Shared fixtures. Tiny models are built in code; conversions share one step cache per session."""

from __future__ import annotations

import os
import sys
from pathlib import Path

import numpy as np
import pytest

sys.path.insert(0, str(Path(__file__).parent))
os.environ.setdefault("TF_CPP_MIN_LOG_LEVEL", "3")
os.environ.setdefault("HF_HUB_OFFLINE", "1")
os.environ.setdefault("TRANSFORMERS_OFFLINE", "1")


@pytest.fixture(scope="session")
def cache_dir(tmp_path_factory) -> Path:
    return tmp_path_factory.mktemp("edgec-cache")


@pytest.fixture(scope="session")
def models(tmp_path_factory) -> Path:
    """Tiny models saved in every source format edgec reads."""
    import edgec
    import tiny_models as tm

    d = tmp_path_factory.mktemp("models")
    edgec.save_torchscript(tm.seeded(tm.TinyCNN), tm.cnn_inputs(), d / "cnn.pt")
    edgec.save_torchscript(tm.seeded(tm.TinyTransformer), tm.transformer_inputs(), d / "transformer.pt")
    edgec.save_torchscript(tm.seeded(tm.TwoInput), tm.two_inputs(), d / "two_input.pt")
    return d


def run_tflite(path: Path, manifest: dict, feed: dict[str, np.ndarray]) -> list[np.ndarray]:
    """Run a built .tflite independently of edgec's runners, using only the manifest's I/O record."""
    from ai_edge_litert import interpreter as lite

    io = manifest["tflite_io"]
    runner = lite.Interpreter(model_path=str(path)).get_signature_runner("serving_default")
    args = {}
    for row in io["inputs"]:
        x = feed[row["source"]]
        args[row["name"]] = np.ascontiguousarray(x.transpose(row["perm"])) if row["perm"] else x
    res = runner(**args)
    outs = []
    for row in io["outputs"]:
        y = res[row["name"]]
        outs.append(y.transpose(np.argsort(row["perm"])) if row["perm"] else y)
    return outs
