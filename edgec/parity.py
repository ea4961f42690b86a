"""The build's parity ledger: every stage of the route run on the same inputs and compared with the
source model and with the stage before it, against the target's per-variant budget.

The metrics are cached under a key made of every artifact's sha256 and the inputs' seed, so a warm
rebuild recomputes only the verdicts (no framework import).
"""

from __future__ import annotations

import json
from pathlib import Path

from .cache import step_key
from .formats import Artifact, Format, TensorSpec
from .loaders import random_inputs
from .validate.compare import merge, metrics, verdict

SAMPLES = 4


def _stage_name(a: Artifact) -> str:
    return f"tflite:{a.variant}" if a.format is Format.TFLITE else a.format.value


def _compute(build, src: Artifact, stages: list[Artifact], inputs: list[TensorSpec],
             outputs: list[TensorSpec]) -> dict:
    from .validate.runners import runner_for

    feeds = [random_inputs(inputs, seed=build.cfg.seed + i) for i in range(SAMPLES)]
    threads = build.target.threads_here()
    module = None
    if src.format in (Format.TORCHSCRIPT, Format.EXPORTED_PROGRAM, Format.TORCH_MODULE):
        from .loaders import load_torch

        module = src.meta.get("module") or load_torch(src.path, src.format, trust_pickle=True)
    io_meta = None
    results: dict[str, list[list]] = {}
    for a in [src] + stages:
        if a.meta.get("io"):
            io_meta = a.meta["io"]
        io_map = a.meta.get("io") or (io_meta if a.format is Format.TFLITE and
                                       a.meta.get("from_saved_model") else None)
        if a.format is Format.SAVED_MODEL and io_map is None:
            io_map = _identity_io(inputs, outputs)
        hints = [bool(m.get("perm") and m["perm"] != sorted(m["perm"])) for m in (io_meta or {}).get("outputs", [])]
        runner = runner_for(a.format, a.path, source_inputs=inputs, source_outputs=outputs, io_map=io_map,
                            torch_module=module, threads=threads, out_hints=hints or None)
        results[_stage_name(a) if a is not src else "source"] = [list(runner.infer(f)) for f in feeds]
    return _ledger_numbers(results)


def _identity_io(inputs, outputs) -> dict:
    from .loaders import sanitize

    return {"inputs": [{"source": s.name, "name": sanitize(s.name), "perm": None} for s in inputs],
            "outputs": [{"source": s.name, "name": sanitize(s.name), "perm": None} for s in outputs]}


def _ledger_numbers(results: dict) -> dict:
    names = list(results)
    ref = results["source"]
    numbers = {}
    prev = "source"
    for name in names[1:]:
        got = results[name]
        per_out_src = [merge([metrics(r[k], g[k]) for r, g in zip(ref, got)]) for k in range(len(ref[0]))]
        per_out_prev = [merge([metrics(r[k], g[k]) for r, g in zip(results[prev], got)])
                        for k in range(len(ref[0]))]
        numbers[name] = {"vs_source": per_out_src, "vs_previous": per_out_prev, "previous": prev}
        if not name.startswith("tflite:") or name == "tflite:fp32":
            prev = name
    return numbers


def run_parity(build, src: Artifact, chain: list[Artifact], tflites: list[Artifact], inputs: list[TensorSpec],
               outputs: list[TensorSpec]) -> dict:
    stages = [a for a in chain if a.format is not Format.TFLITE] + tflites
    if src.format is Format.TFLITE:
        return {"ok": True, "inputs": "none", "stages": [],
                "note": "the source is a TFLite model: there is no other stage to compare with"}
    for a in tflites:
        a.meta["from_saved_model"] = any(c.format is Format.SAVED_MODEL for c in chain)
    shas = [src.meta["sha256"]] + [a.meta["sha256"] for a in stages]
    key = step_key("parity", shas[0], {"stages": shas, "samples": SAMPLES, "seed": build.cfg.seed,
                                       "names": [_stage_name(a) for a in stages]}, {})
    entry = build.cache.get(key)
    if entry is None:
        with build.progress.step(f"parity: {len(stages)} stage(s) x {SAMPLES} inputs"):
            entry = build.cache.put(key, lambda p: _dump(p, _compute(build, src, stages, inputs, outputs)))
    numbers = json.loads(entry.output.read_text())
    return _verdicts(numbers, build.target, outputs, build.cfg)


def _dump(path: Path, numbers: dict) -> dict:
    path.write_text(json.dumps(numbers, default=float))
    return {}


def _budget_for(stage: str, target) -> tuple[str, dict]:
    variant = stage.split(":", 1)[1] if stage.startswith("tflite:") else "fp32"
    default = {"atol": 1e-4} if variant == "fp32" else {"cosine": 0.99}
    return variant, target.parity.get(variant) or default


def _verdicts(numbers: dict, target, outputs, cfg) -> dict:
    stages = []
    ok_all = True
    for stage, rec in numbers.items():
        variant, budget = _budget_for(stage, target)
        outs = []
        ok_stage = True
        for i, m in enumerate(rec["vs_source"]):
            ok, misses = verdict(m, budget)
            ok_stage &= ok
            outs.append({"output": outputs[i].name if i < len(outputs) else f"output_{i}", **m,
                         "vs_previous": rec["vs_previous"][i], "ok": ok, "misses": misses})
        ok_all &= ok_stage
        stages.append({"stage": stage, "variant": variant, "compared_with": "source",
                       "previous": rec["previous"], "budget": budget, "ok": ok_stage, "outputs": outs})
    return {"ok": ok_all, "mode": cfg.parity, "inputs": f"synthetic: {SAMPLES} random normal samples "
            f"(seed {cfg.seed}); real-data validation is not wired into builds yet", "synthetic": True,
            "stages": stages}
