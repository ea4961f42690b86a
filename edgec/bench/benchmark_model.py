"""Parse the text TFLite's ``benchmark_model`` prints into edgec's bench numbers.

What the binary reports (and what it does not): the timed loop's line
``count=50 first=... curr=... min=... max=... avg=... std=...`` (newer builds add ``p5= median=
p95=``), the summary ``Inference timings in us: Init: ..., First inference: ..., Warmup (avg): ...,
Inference (avg): ...``, memory (``Peak memory footprint (MB): init=... overall=...`` or ``Memory
footprint delta ...``) and, with ``--enable_op_profiling=true``, per-op tables. It prints no raw
samples, so p50 is its median where it prints one (else absent), and p90/p99 are never invented.
Values such as ``2.95034e+06`` are in the binary's own float format.
"""

from __future__ import annotations

import re

from edgec.errors import DeviceCrashError

_NUM = r"[-+]?\d+(?:\.\d+)?(?:[eE][-+]?\d+)?"
_STATS = re.compile(rf"count=(\d+)((?:\s+\w+={_NUM})+)")
_PAIR = re.compile(rf"(\w+)=({_NUM})")
_SUMMARY = re.compile(rf"Inference timings in us: Init: ({_NUM}), First inference: ({_NUM}), "
                      rf"Warmup \(avg\): ({_NUM}), Inference \(avg\): ({_NUM})")
_MEMORY = re.compile(rf"(Peak memory footprint|Memory footprint delta from the start of the tool) \(MB\): "
                     rf"init=({_NUM}) overall=({_NUM})")
_RUNNING = re.compile(r"Running benchmark for at least (\d+) iterations and at least ([\d.]+) seconds")
_OP_ROW = re.compile(rf"^\s*(\S+)\s+({_NUM})\s+({_NUM})\s+({_NUM})\s+({_NUM})%\s+({_NUM})%\s+({_NUM})\s+(\d+)\s+(.*)$")
_TYPE_ROW = re.compile(rf"^\s*(\S+)\s+(\d+)\s+({_NUM})\s+({_NUM})%\s+({_NUM})%\s+({_NUM})\s+(\d+)\s*$")


def _stat_lines(text: str) -> list[dict]:
    """Every ``count=N k=v ...`` line outside the profiling tables, in order, as numbers (us)."""
    out = []
    for line in text.splitlines():
        s = line.strip()
        s = re.sub(r"^(?:[A-Z]\s+tflite\s*:\s*|INFO:\s*)", "", s)  # logcat / INFO prefixes
        if not s.startswith("count="):
            continue
        m = _STATS.match(s)
        if m:
            out.append({"count": int(m.group(1)), **{k: float(v) for k, v in _PAIR.findall(m.group(2))}})
    return out


def parse_op_profile(text: str) -> dict | None:
    """The regular runs' operator-wise profile: per-node rows (run order) and per-type totals."""
    start = text.find("Operator-wise Profiling Info for Regular Benchmark Runs")
    if start < 0:
        return None
    body = text[start:]
    section, nodes, by_type = None, [], []
    for line in body.splitlines():
        if "Run Order" in line:
            section = "order"
        elif "Top by Computation Time" in line:
            section = "top"
        elif "Summary by node type" in line:
            section = "type"
        elif line.startswith("Timings (microseconds)"):
            break
        elif section == "order" and (m := _OP_ROW.match(line)):
            nodes.append({"op": m.group(1), "start_ms": float(m.group(2)), "first_ms": float(m.group(3)),
                          "avg_ms": float(m.group(4)), "percent": float(m.group(5)), "mem_kb": float(m.group(7)),
                          "times_called": int(m.group(8)), "name": m.group(9).strip()})
        elif section == "type" and (m := _TYPE_ROW.match(line)):
            by_type.append({"op": m.group(1), "count": int(m.group(2)), "avg_ms": float(m.group(3)),
                            "percent": float(m.group(4)), "times_called": int(m.group(7))})
    return {"nodes": nodes, "by_type": by_type}


def parse(text: str, where: str = "benchmark_model") -> dict:
    """The numbers of one ``benchmark_model`` run; raises DeviceCrashError when it reports none."""
    if "Benchmarking failed" in text or _SUMMARY.search(text) is None:
        errors = [ln.strip() for ln in text.splitlines() if ln.strip().startswith(("ERROR", "Failed", "Benchmarking failed"))]
        raise DeviceCrashError(f"benchmark_model printed no timings{': ' + ' | '.join(errors[-3:]) if errors else ''}",
                               where=where, hint="run it by hand on the device with the same flags to see why")
    init, first, warm_avg, avg = (float(x) for x in _SUMMARY.search(text).groups())
    profiling = text.find("Profiling Info for Benchmark Initialization")
    stats = _stat_lines(text if profiling < 0 else text[:profiling])
    loop = stats[-1] if stats else {}
    warmup = stats[0] if len(stats) > 1 else {}
    ms = lambda us: round(us / 1000.0, 6) if us is not None else None  # noqa: E731
    rec = {"p50_ms": ms(loop.get("median")), "p90_ms": None, "p99_ms": None, "mean_ms": ms(loop.get("avg", avg)),
           "std_ms": ms(loop.get("std")), "min_ms": ms(loop.get("min")), "max_ms": ms(loop.get("max")),
           "p5_ms": ms(loop.get("p5")), "p95_ms": ms(loop.get("p95")), "runs": int(loop.get("count", 0)),
           "init_ms": ms(init), "first_inference_ms": ms(first), "warmup_avg_ms": ms(warm_avg),
           "warmup_runs": int(warmup.get("count", 0)) or None}
    mean = rec["mean_ms"]
    rec["cv"] = round(rec["std_ms"] / mean, 4) if rec["std_ms"] is not None and mean else None
    m = _MEMORY.search(text)
    if m:
        rec["memory"] = {"init_mb": float(m.group(2)), "overall_mb": float(m.group(3)),
                         "method": f"benchmark_model's '{m.group(1)}' (approximate, says the tool)"}
    ops = parse_op_profile(text)
    if ops is not None:
        rec["op_profile"] = ops
    for key, pattern in (("threads", r"Num threads: \[(\d+)\]"), ("graph", r"Graph: \[([^\]]+)\]")):
        found = re.search(pattern, text)
        if found:
            rec[key] = int(found.group(1)) if key == "threads" else found.group(1)
    return rec
