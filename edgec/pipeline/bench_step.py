"""The ``bench`` section of a build's manifest: every variant measured once per artifact and machine.

A measurement is a function of the artifact's bytes, the profile's runtime settings, this machine
and the runtime versions; it is cached under a key of exactly those, like a conversion step. A
warm rebuild therefore reuses the measurement (``"cached": true`` and the time it was taken), which
keeps rebuilds fast; ``edgec bench`` measures afresh, and ``edgec build --no-bench`` skips it.
"""

from __future__ import annotations

import json
import os
import platform
from pathlib import Path

from edgec.errors import EdgecError
from edgec.bench.devices import _cpu_model
from edgec.bench.timing import QUICK


def _key(build, artifact, name: str) -> str:
    from edgec.pipeline.cache import step_key
    from edgec.environment import tool_versions

    t = build.target
    settings = {"artifact": name, "loop": QUICK.to_dict(), "threads": t.threads_here(),
                "runtime": t.to_dict()["runtime"], "reference": t.reference, "constraints": t.delegate_constraints,
                "budgets": t.budgets, "isa": t.device.isa, "variant": artifact.variant}
    host = {"host": platform.node(), "cpu": _cpu_model(), "cores": str(os.cpu_count())}
    return step_key("bench", artifact.meta.get("sha256", ""), settings,
                    {**tool_versions(("ai-edge-litert", "onnxruntime", "tflite-runtime")), **host},
                    code=("bench", "runtime", "pipeline/bench_step.py"))


def _measure(build, artifact, name: str) -> dict:
    from edgec.bench import UNMEASURED, bench_artifact

    try:
        rec = bench_artifact(artifact.path, build.target, loop=QUICK, variant=artifact.variant)
    except EdgecError as exc:
        return {"available": False, "variant": artifact.variant, "reason": exc.one_line(), **UNMEASURED,
                "conditions": {}}
    rec["artifact"] = name
    return rec


def _one(build, artifact, name: str) -> dict:
    key = _key(build, artifact, name)
    entry = build.cache.get(key)
    if entry is not None:
        build.progress.done(f"bench [{artifact.variant}]", cached=True)
        return {**json.loads(entry.output.read_text()), "cached": True}

    def produce(out: Path) -> dict:
        out.write_text(json.dumps(_measure(build, artifact, name), default=str))
        return {"step": "bench"}

    with build.progress.step(f"bench [{artifact.variant}] on this machine"):
        entry = build.cache.put(key, produce)
    return {**json.loads(entry.output.read_text()), "cached": False}


def bench_variants(build, chain: list, tflites: list) -> dict:
    """``{variant: record}`` for the manifest (the same record ``edgec bench --json`` prints)."""
    from edgec.formats import Format

    if build.target.runtime.name == "onnxruntime":
        onnx = next((a for a in chain if a.format is Format.ONNX), None)
        if onnx is None:
            from edgec.bench import UNMEASURED

            return {v: {"available": False, "variant": v, "reason": "no ONNX model in this build's route", **UNMEASURED}
                    for v in build.variants}
        from edgec.formats import Artifact

        out = {}
        for v in build.variants:
            if v in ("fp32", "fp16"):
                out[v] = _one(build, Artifact(onnx.path, Format.ONNX, v, meta=onnx.meta), "model.onnx")
            else:
                out[v] = {"available": False, "variant": v, "reason": "ONNX Runtime on the GPU is measured in "
                          "fp32 and fp16 (converted from model.onnx)", "p50_ms": None, "runs": 0}
        return out
    out = {a.variant: _one(build, a, f"model_{a.variant}.tflite") for a in tflites}
    if getattr(build.cfg, "device", None):  # --device: measured on the board too, beside the estimate
        on_device(build, tflites, out)
    return out


def on_device(build, tflites: list, out: dict) -> None:
    """``record["device"]``: each variant measured on the real device (never cached: a board's state
    is not part of any key). A variant the board's runtime cannot load is recorded as such."""
    from edgec.errors import UnsupportedModelError
    from edgec.bench import UNMEASURED, bench_artifact
    from edgec.bench.connect import make_device

    device = make_device(build.cfg.device)
    for a in tflites:
        with build.progress.step(f"bench [{a.variant}] on {device.name}"):
            try:
                rec = bench_artifact(a.path, build.target, loop=QUICK, variant=a.variant, device=device)
            except UnsupportedModelError as exc:
                rec = {"available": False, "variant": a.variant, "reason": exc.one_line(), **UNMEASURED,
                       "measured_on": device.name}
        rec["artifact"] = f"model_{a.variant}.tflite"
        rec.pop("estimate", None)  # the estimate stays in the host record, beside this one
        out[a.variant]["device"] = rec
