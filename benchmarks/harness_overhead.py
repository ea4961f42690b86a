"""edgec bench's harness overhead against a bare ``interpreter.invoke()`` loop, in the same process
and the same run, and the p50 spread of ``edgec bench`` over repeats.

    .venv/bin/python benchmarks/harness_overhead.py [--model efficientnet-lite0|tiny] [--variants fp32,fp16]
                                                    [--repeats 5] [--threads N] [--tflite PATH]

Overhead, two ways:
- *wall*: per-invoke wall time through ``edgec.bench.timing.measure`` vs a bare loop of ``invoke()``
  calls timed as a whole, alternating in 200 rounds of 5 invokes each (load drift hits both alike);
  the ratio of the two medians. The target is <= 2 %.
- *intrinsic*: the same two loops around a no-op, in ns per iteration: what the harness itself
  adds, as a % of the model's p50.
Spread: ``--repeats`` full ``bench_artifact`` runs (1 s warm-up, >= 50 runs, >= 5 s); the largest
deviation of a repeat's p50 from their median; the target is +-5 %.
"""

from __future__ import annotations

import argparse
import os
import statistics
import sys
import tempfile
import time
from pathlib import Path

from _common import MODELS, save_model

OVERHEAD_TARGET, SPREAD_TARGET = 0.02, 0.05


def build_variants(model: str, variants: list[str], cache: str | None) -> dict[str, Path]:
    import edgec

    tmp = Path(tempfile.mkdtemp(prefix="edgec-overhead-"))
    save_model(model, tmp / "model.pt")
    cfg = edgec.BuildConfig(model=str(tmp / "model.pt"), target="desktop-cpu", out=str(tmp / "out"), bench=False,
                            variants=tuple(variants), cache_dir=cache, synthetic_validation=True)
    out = edgec.build(cfg).out
    return {v: out / f"model_{v}.tflite" for v in variants if (out / f"model_{v}.tflite").exists()}


def bare_loop(fn, n: int) -> float:
    """Seconds per call of a plain loop of n calls, timed as a whole."""
    t0 = time.perf_counter()
    for _ in range(n):
        fn()
    return (time.perf_counter() - t0) / n


def overhead(path: Path, threads: int, rounds: int = 200, chunk: int = 5) -> dict:
    """Fine-grained alternation: each round times ``chunk`` invokes bare and ``chunk`` through the
    harness (order alternating), so load changing on the machine hits both alike; the overhead is the
    ratio of the medians of the per-invoke times."""
    from edgec.bench.runtimes import tflite_session
    from edgec.bench.timing import LoopSettings, measure

    session, _ = tflite_session(path, threads, "xnnpack", None, 0)
    invoke = session.invoke
    bare_loop(invoke, 20)                                     # warm both paths alike
    settings = LoopSettings(warmup_s=0, min_runs=chunk, min_seconds=0, max_seconds=600)
    bare, harness, p50s = [], [], []
    for i in range(rounds):
        if i % 2:
            bare.append(bare_loop(invoke, chunk))
        t = measure(invoke, settings)                        # (its one warm-up call is not timed)
        harness.append(t.loop_s / len(t.samples_ns))
        p50s.extend(t.samples_ns)
        if not i % 2:
            bare.append(bare_loop(invoke, chunk))
    ratio = statistics.median(harness) / statistics.median(bare) - 1
    halves = [statistics.median(harness[h::2]) / statistics.median(bare[h::2]) - 1 for h in (0, 1)]
    noop = lambda: None  # noqa: E731
    t = measure(noop, LoopSettings(warmup_s=0.1, min_runs=200_000, min_seconds=0, max_seconds=60))
    harness_ns = t.loop_s / len(t.samples_ns) * 1e9
    bare_ns = bare_loop(noop, 200_000) * 1e9
    p50 = statistics.median(p50s) / 1e6
    return {"rounds": rounds, "chunk": chunk, "wall_overhead": ratio, "halves": halves, "p50_ms": p50,
            "intrinsic_ns": harness_ns - bare_ns, "intrinsic": (harness_ns - bare_ns) / (p50 * 1e6)}


def spread(path: Path, threads: int, repeats: int) -> dict:
    from edgec.bench import bench_artifact

    p50s = [bench_artifact(path, "desktop-cpu", threads=threads, compat=False)["p50_ms"] for _ in range(repeats)]
    med = statistics.median(p50s)
    return {"p50s": p50s, "median": med, "max_dev": max(abs(p / med - 1) for p in p50s)}


def main() -> int:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--model", choices=MODELS, default="efficientnet-lite0")
    ap.add_argument("--variants", default="fp32")
    ap.add_argument("--repeats", type=int, default=5)
    ap.add_argument("--threads", type=int, default=os.cpu_count())
    ap.add_argument("--tflite", help="measure this file instead of building --model")
    ap.add_argument("--cache-dir")
    args = ap.parse_args()
    paths = {"given": Path(args.tflite)} if args.tflite else build_variants(args.model, args.variants.split(","),
                                                                            args.cache_dir)
    ok = True
    print(f"load average before: {os.getloadavg()}; {args.threads} thread(s), {os.cpu_count()} cores")
    for variant, path in paths.items():
        o = overhead(path, args.threads)
        s = spread(path, args.threads, args.repeats)
        ok &= o["wall_overhead"] <= OVERHEAD_TARGET and s["max_dev"] <= SPREAD_TARGET
        print(f"[{variant}] {path.name}: p50 {o['p50_ms']:.3f} ms")
        print(f"  harness vs bare invoke loop, wall: {100 * o['wall_overhead']:+.2f}% ({o['rounds']} alternating rounds "
              f"of {o['chunk']} invokes each; the two halves: {', '.join(f'{100 * h:+.2f}%' for h in o['halves'])}) "
              f"(target <= {100 * OVERHEAD_TARGET:.0f}%) -> {'PASS' if o['wall_overhead'] <= OVERHEAD_TARGET else 'FAIL'}")
        print(f"  harness intrinsic cost: {o['intrinsic_ns']:.0f} ns per iteration = {100 * o['intrinsic']:.4f}% of p50")
        print(f"  p50 over {args.repeats} edgec bench runs: {', '.join(f'{p:.3f}' for p in s['p50s'])} ms; "
              f"max deviation from their median {100 * s['max_dev']:.1f}% (target +-{100 * SPREAD_TARGET:.0f}%) -> "
              f"{'PASS' if s['max_dev'] <= SPREAD_TARGET else 'FAIL'}")
    print(f"load average after: {os.getloadavg()}")
    return 0 if ok else 1


if __name__ == "__main__":
    sys.exit(main())
