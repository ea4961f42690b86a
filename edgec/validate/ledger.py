"""The build's parity ledger: the validation samples run through every artifact of the route (the
source in torch/onnxruntime/TF/Keras, the ONNX under onnxruntime, the SavedModel under TF, each
TFLite variant under ai-edge-litert with its default delegate *and* with the reference kernels),
each stage compared with the source and with the stage before it, against the target's budget for
its variant (CLI overrides first, then the profile, then ``DEFAULT_BUDGETS``).

A stage that misses its budget both against the source and against the stage before it
*introduced* the error; for such a stage the ledger localizes the first divergent layer
(``edgec.validate.localize``). Every stage runs in a worker process (``edgec.runtime.isolated``):
each TFLite run in its own, the framework stages (the source, ONNX, SavedModel, Keras) in one child
per framework family. A later stage whose process dies (a signal, a time-out) becomes an error for
that stage and the rest of the ledger completes; a source that dies or fails stops the build with
a ``RuntimeCrashError`` (or ``InputError``) naming the stage and the signal, before anything is
written. Outputs go through memory-mapped files, one sample at a time.

The numbers are cached under a key made of every artifact's sha256 and the validation data's
digest, so a warm rebuild recomputes only the verdicts.
"""

from __future__ import annotations

import json
import shutil
import sys
import tempfile
from pathlib import Path

from edgec.formats import Artifact, Format, TensorSpec, size_of
from edgec.validate.compare import merge, metrics, public, verdict
from edgec.runtime.isolated import ArrayStore, run_task, stage_progress, start_task, write_feeds

LEDGER_VERSION = 9
DEFAULT_BUDGETS = {
    "fp32": {"atol_scaled": 1e-4},
    "fp16": {"cosine": 0.999},
    "dynamic_int8": {"cosine": 0.99},
    "int8": {"top1_confident": 0.95, "cosine": 0.97},
    "int16x8": {"cosine": 0.999},
}
TOOLS = ("torch", "onnxruntime", "tensorflow", "ai-edge-litert")
KERNELS = {"default": "ai-edge-litert, default delegate (XNNPACK)", "reference": "ai-edge-litert, reference "
           "kernels (BUILTIN_WITHOUT_DEFAULT_DELEGATES)"}


def stage_name(a: Artifact) -> str:
    return f"tflite:{a.variant}" if a.format is Format.TFLITE else a.format.value


def budget_for(stage: str, target, overrides: dict) -> tuple[str, dict, str]:
    """(variant, budget, where it came from) for a stage; float stages use the fp32 budget."""
    variant = stage.split(":", 1)[1].split(" on ", 1)[0] if stage.startswith("tflite:") else "fp32"  # "... on DEVICE"
    budget, source = dict(DEFAULT_BUDGETS.get(variant, {"cosine": 0.99})), "default"
    if target.parity.get(variant):
        budget, source = dict(target.parity[variant]), f"target {target.name}"
    if overrides.get(variant):
        budget.update(overrides[variant])
        source = f"{source} + overrides"
    return variant, budget, source


# -- running every stage --------------------------------------------------------------------------

class _Plan:
    """What each stage needs to run: its artifact, I/O map, output layout hints, previous stage."""

    def __init__(self, src: Artifact, stages: list[Artifact], inputs, outputs):
        from edgec.data.calibration import identity_io

        self.src, self.inputs, self.outputs = src, inputs, outputs
        self.constants: dict = {}                            # --input-value inputs: fed to the source only
        self.source_input_order = [s.name for s in inputs]   # the source's inputs, constants included
        self.rows = []
        io_meta, prev = None, "source"
        from_saved_model = any(a.format is Format.SAVED_MODEL for a in stages)
        for a in stages:
            io_meta = a.meta.get("io") or io_meta
            io_map = a.meta.get("io") or (io_meta if a.format is Format.TFLITE and from_saved_model else None)
            if a.format is Format.SAVED_MODEL and io_map is None:
                io_map = identity_io(inputs, outputs)
            hints = [bool(m.get("perm") and m["perm"] != sorted(m["perm"]))
                     for m in (io_meta or {}).get("outputs", [])] or None
            name = stage_name(a)
            self.rows.append({"name": name, "artifact": a, "io_map": io_map, "hints": hints, "previous": prev})
            if a.format is not Format.TFLITE or a.variant == "fp32":
                prev = name


# The framework stages run in worker children, one per framework family (the TF child is the
# expensive one to start: ~4 s of imports; a torch/onnxruntime child ~1 s), the families side by
# side: the TF child starts with the source's and keeps running while the TFLite children run.
RUNTIMES = {Format.TORCHSCRIPT: "torch", Format.EXPORTED_PROGRAM: "torch", Format.TORCH_MODULE: "torch",
            Format.ONNX: "onnxruntime", Format.SAVED_MODEL: "tensorflow", Format.KERAS: "keras"}
LEDGER_CODE = ("validate", "runtime", "data", "formats")  # the code that shapes the cached numbers
OUTPUTS_CACHE_BYTES = 64 << 20   # a stage's outputs up to this size are cached for the next ledger
_RECORD = "record.json"


def _family(fmt: Format) -> str:
    return "tensorflow" if fmt in (Format.SAVED_MODEL, Format.KERAS) else "torch/onnxruntime"


def _framework_specs(plan: _Plan, work: Path) -> list[tuple[Artifact, dict]]:
    """(artifact, worker stage) for the source and every non-TFLite stage."""
    rows = [("source", plan.src, None)] + [(r["name"], r["artifact"], r) for r in plan.rows
                                             if r["artifact"].format is not Format.TFLITE]
    out = []
    for name, a, row in rows:
        io_map = (row or {}).get("io_map")
        if a.format is Format.SAVED_MODEL and io_map is None:  # a SavedModel source: its own names and layout
            from edgec.data.calibration import identity_io

            io_map = identity_io(plan.inputs, plan.outputs)
        spec = {"name": name, "format": a.format.value, "path": str(a.path), "io_map": io_map,
                "hints": (row or {}).get("hints"), "outputs": str(work / name)}
        if name == "source" and plan.constants:
            spec.update(_constants_spec(plan))
        out.append((a, spec))
    return out


def _constants_spec(plan: "_Plan") -> dict:
    """The source's full input list (constants in their place) and the constants' values."""
    consts = {k: {"value": v.tolist(), "dtype": v.dtype.name} for k, v in plan.constants.items()}
    by_name = {s.name: s for s in plan.inputs}
    specs = [by_name[n].to_dict() if n in by_name else
             TensorSpec(n, tuple(plan.constants[n].shape), plan.constants[n].dtype.name).to_dict()
             for n in plan.source_input_order]
    return {"constants": consts, "source_inputs": specs}


class _Group:
    """Framework stages of one family, run in one worker child started at once (in the background).
    If the child dies, the stage it was running gets the error and the stages after it run in a
    fresh child."""

    def __init__(self, build, plan: _Plan, feeds: Path, work: Path, stages: list[dict], family: str | None = None):
        self.family = family
        self.base = {"task": "framework_outputs", "inputs": str(feeds), "threads": build.target.threads_here(),
                     "source_inputs": [s.to_dict() for s in plan.inputs],
                     "source_outputs": [s.to_dict() for s in plan.outputs], "sys_path": list(sys.path)}
        self.work, self.stages, self.tries = work, stages, 0
        self.names = [st["name"] for st in stages]
        self.progress: Path | None = None
        self._records: dict | None = None
        self.job = self._start(stages)

    def _start(self, stages: list[dict]):
        self.tries += 1
        self.progress = self.work / f"progress-{self.names[0]}-{self.tries}.jsonl"
        return start_task({**self.base, "stages": stages, "progress": str(self.progress)},
                          family=self.family if self.tries == 1 else None)  # a retry after a crash: fresh

    def records(self) -> dict[str, dict]:
        if self._records is None:
            self._records, todo = {}, self.stages
            while todo:
                res = self.job.wait()
                done, running = stage_progress(self.progress)
                self._records.update(done)
                if not res.get("crashed"):
                    break
                crashed = running or next(st["name"] for st in todo if st["name"] not in done)
                self._records[crashed] = {"error": res["error"], "crashed": True, "signal": res.get("signal")}
                todo = todo[[st["name"] for st in todo].index(crashed) + 1:]
                if todo:
                    self.job = self._start(todo)
        return self._records

    def kill(self) -> None:
        self.job.kill()


def _start_groups(build, plan: _Plan, feeds: Path, work: Path, specs: list[tuple[Artifact, dict]]) -> dict:
    """One child per framework family, the source's family first; {stage name: its group}."""
    families: dict[str, list[dict]] = {}
    for a, spec in specs:
        families.setdefault(_family(a.format), []).append(spec)
    groups = {}
    for fam, stages in families.items():
        g = _Group(build, plan, feeds, work, stages, family=fam)
        groups.update({name: g for name in g.names})
    return groups


class _Outputs:
    """Each stage's outputs on the validation data, cached under the artifact's sha256, how it ran
    and the data's digest, so that the next ledger of a build (the route search checks fp32 first;
    a rebuild with other variants) runs only what is new. Outputs over OUTPUTS_CACHE_BYTES are not kept."""

    def __init__(self, build, plan: _Plan, validation, work: Path):
        self.build, self.work = build, work
        self.common = {"validation": validation.sha256, "threads": build.target.threads_here(),
                       "constants": _constants_digest(plan),
                       "inputs": [s.to_dict() for s in plan.inputs], "outputs": [s.to_dict() for s in plan.outputs],
                       "v": LEDGER_VERSION}

    def key(self, a: Artifact, how: dict) -> str:
        from edgec.environment import tool_versions

        return self.build.cache.key("parity-outputs", a.meta["sha256"], {**self.common, "format": a.format.value,
                                    **how}, tool_versions(TOOLS), code=LEDGER_CODE)

    def reuse(self, key: str, name: str) -> dict | None:
        entry = self.build.cache.get(key)
        if entry is None:
            return None
        (self.work / name).symlink_to(entry.output.resolve(), target_is_directory=True)
        return {**json.loads((entry.output / _RECORD).read_text()), "outputs_cached": True}

    def keep(self, key: str, name: str, rec: dict) -> dict:
        d = self.work / name
        if rec.get("error") or rec.get("outputs_cached") or not d.is_dir() or size_of(d) > OUTPUTS_CACHE_BYTES:
            return rec

        def produce(out: Path) -> dict:
            shutil.copytree(d, out)
            (out / _RECORD).write_text(json.dumps(rec, default=float))
            return {"step": "parity-outputs"}

        self.build.cache.put(key, produce)
        return rec


def _source_record(plan: _Plan, rec: dict) -> dict:
    """The source run's record; a source that cannot run stops the build here, before anything is
    written, with the stage, its framework and the signal (or the error) named."""
    where = f"parity: source ({RUNTIMES.get(plan.src.format, plan.src.format.value)})"
    if rec.get("crashed"):
        from edgec.errors import RuntimeCrashError

        how = "ran past its time limit" if rec.get("signal") == "timeout" else f"died with {rec.get('signal')}"
        stderr = rec["error"].partition("; stderr: ")[2]
        raise RuntimeCrashError(f"the source model's process {how} on the validation inputs"
                                f"{'; its stderr: ' + stderr if stderr else ''}", where=where, hint="the model crashes its own framework on these inputs (e.g. an "
                                "integer division by zero or an index out of range): check the validation data "
                                "fits the model, or fix the model")
    if rec.get("error"):
        from edgec.errors import InputError

        raise InputError(f"the source model fails on the validation inputs: {rec['error']}", where=where,
                         hint="check that the validation data fits the model (index inputs within range, "
                              "non-zero integer divisors)")
    return rec


def _tflite(build, row: dict, plan: _Plan, feeds_dir: Path, out: Path, kernels: str) -> dict:
    task = {"task": "tflite_outputs", "model": str(row["artifact"].path), "inputs": str(feeds_dir),
            "outputs": str(out), "source_inputs": [s.to_dict() for s in plan.inputs],
            "source_outputs": [s.to_dict() for s in plan.outputs], "io_map": row["io_map"],
            "out_hints": row["hints"], "threads": build.target.threads_here(),
            "reference_kernels": kernels == "reference"}
    res = run_task(task)
    res.pop("error_record", None)  # the ledger keeps the one-line error; the class is for refusing callers
    res["runtime"] = KERNELS[kernels]
    return res


def _compare(a: Path, b: Path) -> list[dict]:
    """Per output, merged metrics of store ``b`` against store ``a``, a sample at a time."""
    sa, sb = ArrayStore(a), ArrayStore(b)
    per_out: list[list] = []
    for i in range(sa.samples()):
        ra, rb = sa.get(i), sb.get(i)
        if not per_out:
            per_out = [[] for _ in ra]
        for k, (x, y) in enumerate(zip(ra, rb)):
            per_out[k].append(metrics(x, y))
        if len(rb) != len(ra):
            raise ValueError(f"{len(rb)} outputs where the source has {len(ra)}")
    return [public(merge(m)) for m in per_out]


def _compute(build, plan: _Plan, validation, work: Path) -> dict:
    feeds = write_feeds(work / "inputs", [s.name for s in plan.inputs], (s.feed for s in validation.samples))
    numbers = {"order": [r["name"] for r in plan.rows], "stages": {}}
    outs = _Outputs(build, plan, validation, work)
    specs = _framework_specs(plan, work)
    keys = {spec["name"]: outs.key(a, {k: spec[k] for k in ("io_map", "hints")}) for a, spec in specs}
    reused = {spec["name"]: rec for _, spec in specs if (rec := outs.reuse(keys[spec["name"]], spec["name"]))}
    groups = _start_groups(build, plan, feeds, work, [(a, s) for a, s in specs if s["name"] not in reused])

    def framework(name: str) -> dict:
        return reused.get(name) or outs.keep(keys[name], name, groups[name].records()[name])

    try:
        with build.progress.step(f"parity: source on {len(validation.samples)} samples"):
            numbers["source"] = _source_record(plan, framework("source"))
        later = []
        for row in plan.rows:  # the TFLite stages now; a framework stage when its child is done
            name = row["name"]
            if row["artifact"].format is Format.TFLITE:
                with build.progress.step(f"parity: {name}"):
                    numbers["stages"][name] = _tflite_stage(build, row, plan, feeds, work, outs)
            elif name in reused or groups[name] is groups.get("source"):
                build.progress.done(f"parity: {name}", cached=name in reused)
                numbers["stages"][name] = _with_metrics({"previous": row["previous"], **framework(name)}, work,
                                                        name, None)
            else:
                later.append(row)
        from edgec.validate.device_parity import device_stages

        device_stages(build, plan, feeds, work, numbers, _with_metrics)  # --parity-on-device: "tflite:V on DEVICE" rows
        for row in later:
            with build.progress.step(f"parity: {row['name']}"):
                numbers["stages"][row["name"]] = _with_metrics({"previous": row["previous"],
                                                                **framework(row["name"])}, work, row["name"], None)
    finally:
        for g in set(groups.values()):
            g.kill()
    return numbers


def _tflite_stage(build, row: dict, plan: _Plan, feeds: Path, work: Path, outs: _Outputs) -> dict:
    name = row["name"]

    def run(kernels: str, here: str) -> dict:
        key = outs.key(row["artifact"], {"io_map": row["io_map"], "hints": row["hints"], "kernels": kernels})
        rec = outs.reuse(key, here)
        return rec if rec is not None else outs.keep(key, here, _tflite(build, row, plan, feeds, work / here,
                                                                         kernels))

    rec = {"previous": row["previous"], **run("default", name)}
    rec["reference_kernels"] = _with_metrics(run("reference", f"{name}@ref"), work, name, f"{name}@ref")
    return _with_metrics(rec, work, name, None)


def _with_metrics(rec: dict, work: Path, name: str, ref_name: str | None) -> dict:
    """Add vs_source / vs_previous (and for reference-kernel runs vs the default run) metrics."""
    if rec.get("error"):
        return rec

    def against(base: str, here: str):
        return _compare(work / base, work / here) if (work / base).is_dir() else None

    try:
        if ref_name is None:
            rec["vs_source"] = against("source", name)
            rec["vs_previous"] = against(rec["previous"], name) if rec["previous"] != "source" else rec["vs_source"]
        else:
            rec["vs_source"] = against("source", ref_name)
            rec["vs_default"] = against(name, ref_name)
    except ValueError as exc:
        rec["error"] = f"cannot compare the outputs: {exc}"
    return rec


# -- verdicts -------------------------------------------------------------------------------------

def _output_rows(rec: dict, budget: dict, outputs: list[TensorSpec]) -> tuple[list[dict], bool, bool]:
    rows, ok_src, ok_prev = [], True, True
    ref = rec.get("reference_kernels") or {}
    for i, m in enumerate(rec["vs_source"] or []):
        ok, misses = verdict(m, budget)
        prev = (rec.get("vs_previous") or [None] * (i + 1))[i]
        ok_src &= ok
        ok_prev &= verdict(prev, budget)[0] if prev else False
        row = {"output": outputs[i].name if i < len(outputs) else f"output_{i}", **m, "vs_previous": prev,
               "ok": ok, "misses": misses}
        if ref.get("vs_source"):
            row["reference_kernels"] = ref["vs_source"][i]
            row["drift"] = (ref.get("vs_default") or [None] * (i + 1))[i]
        rows.append(row)
    return rows, ok_src, ok_prev


def _stage(name: str, rec: dict, target, outputs, overrides: dict) -> dict:
    variant, budget, where = budget_for(name, target, overrides)
    st = {"stage": name, "variant": variant, "runtime": rec.get("runtime"), "compared_with": "source",
          "previous": rec["previous"], "budget": budget, "budget_source": where}
    if rec.get("error") or rec.get("vs_source") is None:
        err = rec.get("error") or "no outputs to compare"
        return {**st, "ok": False, "introduced": True, "error": err, "outputs": [],
                "misses": [f"did not run: {err}"]}
    rows, ok_src, ok_prev = _output_rows(rec, budget, outputs)
    st.update(ok=ok_src, introduced=not ok_src and not ok_prev, outputs=rows,
              misses=[m for r in rows for m in r["misses"]])
    ref = rec.get("reference_kernels")
    if ref is not None:
        ref_ok = bool(ref.get("vs_source")) and all(verdict(m, budget)[0] for m in ref["vs_source"])
        st["reference_kernels"] = {"runtime": ref.get("runtime"), "error": ref.get("error"), "ok": ref_ok,
                                   "infer_seconds": ref.get("infer_seconds")}
    return st


def _findings(stages: list[dict]) -> list[str]:
    out = []
    for st in stages:
        if st.get("error"):
            out.append(f"{st['stage']} did not run: {st['error']}")
        elif st.get("introduced") and not st["ok"]:
            out.append(f"{st['stage']} introduced the error (it misses against {st['previous']} too): "
                       f"{'; '.join(st['misses'][:2])}")
        ref = st.get("reference_kernels")
        if ref and ref.get("error"):
            out.append(f"{st['stage']}: the reference-kernel run failed: {ref['error']}")
        elif ref and ref["ok"] != st["ok"]:
            good, bad = ("reference kernels", "default delegate") if ref["ok"] else ("default delegate",
                                                                                     "reference kernels")
            out.append(f"{st['stage']}: delegate-vs-reference drift: within budget with the {good}, "
                       f"missed with the {bad}")
    return out


def _validation_text(validation) -> str:
    if validation.synthetic:
        return (f"synthetic: {len(validation.samples)} random samples (--synthetic-validation); "
                "not evidence of accuracy on real inputs")
    return f"{len(validation.samples)} validation samples from {validation.source} (real data)"


# -- localization ---------------------------------------------------------------------------------

def _localization_pair(name: str, plan: _Plan) -> tuple[dict | None, dict | None, str]:
    """(reference row, candidate row, note) for localizing stage ``name``."""
    rows = {r["name"]: r for r in plan.rows}
    if name not in rows:  # "tflite:VARIANT on DEVICE": the board gives outputs, not its layers
        return None, None, f"layer localization runs on the host, not for {name}"
    fp32 = rows.get("tflite:fp32")
    if name in ("saved_model", "tflite:fp32"):
        onnx = rows.get("onnx")
        if onnx is None or fp32 is None:
            return None, None, "no ONNX stage in this route to localize a float stage against"
        note = "the TFLite fp32 made from this SavedModel vs ONNX" if name == "saved_model" else "vs ONNX"
        return onnx, fp32, note
    if name.startswith("tflite:") and fp32 is not None:
        return fp32, rows[name], "vs tflite:fp32, each intermediate dequantized"
    return None, None, f"layer localization is not available for the {name} stage"


def _localize(build, name: str, st: dict, plan: _Plan, validation) -> dict:
    from edgec.validate.localize import SAMPLES, layer_limits

    ref, got, note = _localization_pair(name, plan)
    if ref is None:
        return {"note": note, "first_divergent": None}
    limits = layer_limits(st["budget"])
    n = min(SAMPLES, len(validation.samples))
    key = build.cache.key("localize", got["artifact"].meta["sha256"],
                          {"ref": ref["artifact"].meta["sha256"], "validation": validation.sha256, "samples": n,
                           "limits": limits, "v": LEDGER_VERSION}, {}, code=LEDGER_CODE)
    entry = build.cache.get(key)
    if entry is not None:
        loc = json.loads(entry.output.read_text())
    else:
        with build.progress.step(f"parity: localizing {name} ({note})"), \
                tempfile.TemporaryDirectory(prefix="edgec-localize-") as work:
            feeds = write_feeds(Path(work) / "inputs", [s.name for s in plan.inputs],
                                (s.feed for s in validation.samples[:n]))
            task = {"task": "layers", "ref": str(ref["artifact"].path), "ref_kind":
                    "onnx" if ref["artifact"].format is Format.ONNX else "tflite", "got": str(got["artifact"].path),
                    "ref_io_map": ref["io_map"], "got_io_map": got["io_map"], "inputs": str(feeds),
                    "source_inputs": [s.to_dict() for s in plan.inputs], "samples": n, "limits": limits,
                    "source_outputs": [s.to_dict() for s in plan.outputs], "threads": build.target.threads_here()}
            loc = run_task(task)
        if not loc.get("error"):
            _cache_json(build.cache, key, loc)
    return {**loc, "note": note, "reference_stage": ref["name"], "model_stage": got["name"]}


# -- the entry point ------------------------------------------------------------------------------

def run_ledger(build, src: Artifact, chain: list[Artifact], tflites: list[Artifact], inputs: list[TensorSpec],
               outputs: list[TensorSpec], validation) -> dict:
    stages = [a for a in chain if a.format is not Format.TFLITE] + tflites
    plan = _Plan(src, stages, inputs, outputs)
    plan.constants = dict(getattr(build, "constants", None) or {})
    plan.source_input_order = list(getattr(build, "source_input_order", None) or [s.name for s in inputs])
    shas = [src.meta["sha256"]] + [a.meta["sha256"] for a in stages]
    from edgec.environment import tool_versions

    key = build.cache.key("parity", shas[0], {"stages": shas, "names": [r["name"] for r in plan.rows],
                                              "validation": validation.sha256, "threads": build.target.threads_here(),
                                              "constants": _constants_digest(plan), "v": LEDGER_VERSION},
                          tool_versions(TOOLS), code=LEDGER_CODE)
    from edgec.validate.device_parity import wanted

    on_device = wanted(build) is not None  # a device's rows are measured afresh, never cached
    entry = None if on_device else build.cache.get(key)
    if entry is not None:
        numbers = json.loads(entry.output.read_text())
    else:
        with tempfile.TemporaryDirectory(prefix="edgec-ledger-") as work:
            numbers = _compute(build, plan, validation, Path(work))
        if not on_device and not _failed(numbers["stages"].values()):  # a crash or time-out may not repeat: never cached
            _cache_json(build.cache, key, numbers)
    return _assemble(build, numbers, plan, outputs, validation)


def _constants_digest(plan: "_Plan") -> dict:
    return {k: [v.dtype.name, v.tolist()] for k, v in sorted(plan.constants.items())}


def _failed(records) -> bool:
    return any(r.get("error") or r.get("vs_source") is None or (r.get("reference_kernels") or {}).get("error")
               for r in records)


def _cache_json(cache, key: str, data) -> None:
    def produce(path: Path) -> dict:
        path.write_text(json.dumps(data, default=float))
        return {}

    cache.put(key, produce)


def _assemble(build, numbers: dict, plan: _Plan, outputs, validation) -> dict:
    cfg = build.cfg
    stages = [_stage(n, numbers["stages"][n], build.target, outputs, cfg.parity_budgets) for n in numbers["order"]]
    localization = [{"stage": st["stage"], **_localize(build, st["stage"], st, plan, validation)}
                    for st in stages if st.get("introduced") and not st["ok"] and not st.get("error")]
    findings = _findings(stages)
    from edgec.validate.localize import describe

    for loc in localization:
        if "first_divergent" in loc or loc.get("error"):
            findings.append(f"{loc['stage']}: {describe(loc)}")
    ok = all(st["ok"] for st in stages)
    introduced = [st["stage"] for st in stages if st.get("introduced") and not st["ok"]]
    return {"ok": ok, "mode": cfg.parity, "synthetic": validation.synthetic, "inputs": _validation_text(validation),
            "validation": validation.record(), "source_runtime": numbers["source"].get("runtime"),
            "stages": stages, "introduced_by": introduced, "localization": localization, "findings": findings,
            "finding": findings[0] if findings and not ok else None,
            "verdict": "ok" if ok else ("missed (--parity warn: build kept)" if cfg.parity == "warn" else "missed")}
