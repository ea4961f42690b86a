"""pytest-benchmark suite: representative models x target runtime settings, one interpreter invoke per
round, with the target's estimate attached as extra info (labelled estimated).

Models: the tiny CNN of the tests (always) and pretrained EfficientNet-Lite0 (when the `examples`
extra is installed), each built once (fp32, dynamic_int8) in a module fixture. Targets: the thread
count and delegate each profile asks for, capped at this machine's cores.

    .venv/bin/python -m pytest benchmarks/test_bench_models.py
    .venv/bin/python -m pytest benchmarks/ --benchmark-json out.json   # tracked in CI, compared over time
"""

from __future__ import annotations

import importlib.util
import tempfile
from pathlib import Path

import pytest

import edgec
from _common import save_model
from edgec.bench.runtimes import tflite_session
from edgec.bench.estimate import estimate_artifact
from edgec.targets import load_target

MODELS = ["tiny"] + (["efficientnet-lite0"] if importlib.util.find_spec("efficientnet_lite_pytorch") else [])
TARGETS = ["desktop-cpu", "rpi4", "android-arm64-cpu", "android-gpu"]
VARIANTS = ("fp32", "dynamic_int8")


@pytest.fixture(scope="module", params=MODELS)
def built(request) -> tuple[str, Path]:
    tmp = Path(tempfile.mkdtemp(prefix=f"edgec-bench-{request.param}-"))
    save_model(request.param, tmp / "model.pt")
    cfg = edgec.BuildConfig(model=str(tmp / "model.pt"), target="desktop-cpu", out=str(tmp / "out"), bench=False,
                            variants=VARIANTS, synthetic_validation=True)
    return request.param, edgec.build(cfg).out


@pytest.mark.parametrize("variant", VARIANTS)
@pytest.mark.parametrize("target_name", TARGETS)
def test_invoke(benchmark, built, target_name, variant):
    model, out = built
    target = load_target(target_name)
    path = out / f"model_{variant}.tflite"
    session, source = tflite_session(path, target.threads_here(), target.runtime.delegate, None, 0)
    benchmark.extra_info.update(model=model, variant=variant, target=target_name, threads=session.threads,
                                delegate=session.delegate, inputs=source)
    if not target.is_host:
        est = estimate_artifact(path, target, variant)
        benchmark.extra_info["estimate"] = {k: est.get(k) for k in ("estimated", "device", "p50_ms", "low_ms", "high_ms")}
    benchmark.pedantic(session.invoke, rounds=30, iterations=1, warmup_rounds=5)
