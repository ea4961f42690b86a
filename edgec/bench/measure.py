"""Measuring one artifact: the timing loop on a device (here or a board), with size, budgets,
compatibility and the estimate beside it (``bench_artifact``)."""


from __future__ import annotations

import gzip
import os
import time
from pathlib import Path

from edgec.errors import InputError, UsageError
from edgec.bench.devices import Device, LocalDevice
from edgec.bench.stats import kept_samples, summarize
from edgec.bench.timing import QUICK, LoopSettings

# The measured keys of a record that could not be measured: present, and null, so readers need no guard.
UNMEASURED = {"p50_ms": None, "p90_ms": None, "p99_ms": None, "runs": 0}

__all__ = ["bench_artifact", "bench", "LoopSettings", "QUICK", "LocalDevice", "Device", "variant_of"]


def variant_of(path: Path) -> str:
    """fp32 / fp16 / dynamic_int8 / int8 / int16x8, read from the graph's tensor types."""
    from edgec.formats.opgraph import constant_types, read_op_costs

    ops = read_op_costs(path)
    if any(o.hybrid for o in ops):
        return "dynamic_int8"
    acts = {t for o in ops if o.kind in ("conv", "depthwise", "fc") for t, c in zip(o.in_dtypes, o.in_const) if not c}
    if "int16" in acts:
        return "int16x8"
    if acts & {"int8", "uint8"}:
        return "int8"
    return "fp16" if "float16" in constant_types(path) else "fp32"


def _threads(target, override: int | None, cores: int | None = None, where: str = "here") -> tuple[int, str]:
    host = cores or os.cpu_count() or 1
    want = override or (target.runtime.threads if target.runtime.threads > 0 else host)
    used = min(want, host)
    why = "--threads" if override else f"profile {target.runtime.threads or 'all cores'}"
    return used, f"{why}{f', capped at the {host} cores {where}' if used < want else ''}"


def _size(path: Path) -> dict:
    data = path.read_bytes()
    return {"size_bytes": len(data), "gzip_bytes": len(gzip.compress(data, 6))}


def _versions() -> dict:
    from edgec.environment import tool_versions

    return tool_versions(("ai-edge-litert", "onnxruntime", "tflite-runtime", "numpy"))


def bench_artifact(path, target, *, threads: int | None = None, loop: LoopSettings = LoopSettings(),
                   inputs: str | None = None, seed: int = 0, variant: str | None = None, compat: bool = True,
                   device: Device | None = None) -> dict:
    """The bench record of one artifact for one target (see the README's Benchmarking section)."""
    from edgec.formats import Format, detect_format, digest
    from edgec.targets import TargetProfile, load_target

    target = target if isinstance(target, TargetProfile) else load_target(target)
    path = Path(path)
    fmt = detect_format(path)
    if fmt not in (Format.TFLITE, Format.ONNX):
        raise InputError(f"edgec bench measures .tflite and .onnx files, not {fmt.value}", where=str(path),
                         hint="build it first: edgec build MODEL --target NAME")
    runtime = "tflite" if fmt is Format.TFLITE else "onnxruntime"
    if target.runtime.name == "onnxruntime" and runtime == "tflite":
        raise UsageError(f"{target.name} runs ONNX Runtime; this is a TFLite file", where=str(path),
                         hint="pass the build's model.onnx")
    variant = variant or (variant_of(path) if runtime == "tflite" else "fp32")
    device = device or LocalDevice()
    remote = getattr(device, "remote", False)  # a board over ssh/adb: its cores, its runtime
    n, why = _threads(target, threads, *((device.describe().get("cores"), "on the device") if remote else ()))
    delegate = target.runtime.delegate if runtime == "tflite" else ("cuda" if target.runtime.delegate == "cuda" else "cpu")
    record = {"artifact": str(path), "format": fmt.value, "variant": variant, "target": target.name,
              "sha256": digest(path), **_size(path)}
    machine = device.describe()
    if delegate == "cuda":
        from edgec.bench.runtimes import cuda_status

        ok, reason = cuda_status()
        if not ok:
            record.update(available=False, reason=reason, **UNMEASURED, conditions={"machine": machine, "delegate": "cuda"})
            return _extras(record, path, target, variant, runtime, compat)
    if runtime == "onnxruntime" and variant == "fp16":
        return _onnx_fp16(record, path, target, device, n, why, loop, inputs, seed, compat)
    if getattr(device, "measure", None):  # a phone over adb: benchmark_model's numbers (bench/adb.py)
        from edgec.bench.adb import fill_record

        fill_record(record, device.measure(path, n, delegate, loop), n, why, loop, device)
        return _extras(record, path, target, variant, runtime, compat, device)
    run = device.run(path, runtime, n, delegate, loop, inputs, seed)
    _fill(record, run, run.after or machine, n, why, loop)
    if remote:
        record["measured_on"] = device.name
    return _extras(record, path, target, variant, runtime, compat, device if remote else None)


def _fill(record: dict, run, machine: dict, threads: int, why: str, loop: LoopSettings) -> None:
    """The measured part of the record: statistics, raw samples, memory, conditions."""
    samples = [s / 1e6 for s in run.timing.samples_ns]
    kept = kept_samples(samples)
    record.update(available=True, **summarize(samples), duration_s=round(run.timing.loop_s, 3),
                  warmup={"seconds": round(run.timing.warmup_s, 3), "runs": run.timing.warmup_runs},
                  memory=run.memory, conditions=_conditions(machine, run, threads, why, loop),
                  samples_ms=kept[0], samples_kept=kept[1])


def _onnx_fp16(record, path, target, device, n, why, loop, inputs, seed, compat) -> dict:
    """fp16 on ONNX Runtime's CUDA EP: an fp16 copy of the fp32 ONNX (inputs/outputs stay float32)."""
    import tempfile

    from edgec.bench.runtimes import fp16_onnx

    with tempfile.TemporaryDirectory(prefix="edgec-fp16-") as tmp:
        half = fp16_onnx(path, Path(tmp) / "model_fp16.onnx")
        run = device.run(half, "onnxruntime", n, "cuda", loop, inputs, seed)
        record.update(_size(half))
    _fill(record, run, device.describe(), n, why, loop)
    record["conditions"]["notes"].append("fp16: converted from the fp32 ONNX with onnxruntime.transformers.float16")
    return _extras(record, path, target, "fp16", "onnxruntime", compat)


def _conditions(machine, run, threads, why, loop) -> dict:
    s = run.session
    return {"machine": machine, "runtime": s.runtime, "runtime_version": s.runtime_version, "versions": _versions(),
            "threads": threads, "threads_from": why, "delegate": s.delegate, "input_source": run.input_source,
            "inputs": s.inputs, "notes": s.notes, "loop": loop.to_dict(),
            "measured_at": time.strftime("%Y-%m-%dT%H:%M:%SZ", time.gmtime())}


def _extras(record, path, target, variant, runtime, compat, device=None) -> dict:
    """Estimate, delegate coverage, runtime compatibility and budgets: all static, all labelled."""
    cov = None
    if runtime == "tflite":
        from edgec.targets.delegates import coverage_for
        from edgec.bench.estimate import estimate
        from edgec.formats.opgraph import features, read_op_costs

        cov = coverage_for(path, target)
        if cov is not None:
            record["delegate_coverage"] = cov
        if not target.is_host:
            est = estimate(features(read_op_costs(path)), target, variant)
            if cov and not cov["fully_delegated"]:
                est.setdefault("notes", []).append(
                    f"{cov['ops_on_cpu']} op(s), {100 * cov['share_macs_on_cpu']:.1f}% of MACs, stay on the CPU: "
                    "the hand-overs are not in the estimate")
            record["estimate"] = est
        if compat and device is not None:  # against the runtime the board actually has
            from edgec.bench.remote import board_compat

            record["compat"] = board_compat(path, target, device, record)
        elif compat:
            from edgec.targets.compat import check_artifact

            record["compat"] = check_artifact(path, target)
    record["budgets"] = _budgets(record, target)
    return record


def _budgets(record: dict, target) -> dict:
    b = target.budgets
    out: dict = {}
    if "size_mb" in b:
        mb = record["size_bytes"] / 1e6
        out["size"] = {"budget_mb": b["size_mb"], "size_mb": round(mb, 2), "ok": mb <= b["size_mb"]}
    if "latency_ms" in b:
        est = record.get("estimate") or {}
        if record.get("measured_on") and record.get("available"):
            value, basis = record["p50_ms"], f"measured p50 on {record['measured_on']}"
        elif est.get("p50_ms") is not None:
            value, basis = est["p50_ms"], f"estimated p50 on {est['device']}"
        elif target.is_host and record.get("available"):
            value, basis = record["p50_ms"], "measured p50 here"
        else:
            value, basis = None, "no number for the device"
        out["latency"] = {"budget_ms": b["latency_ms"], "value_ms": value, "basis": basis,
                          "ok": None if value is None else value <= b["latency_ms"]}
    return out


