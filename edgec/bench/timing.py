"""The one timing loop of edgec. Everything that measures latency calls ``measure``.

Warm-up runs for a time (not a count), then the timed loop runs until it has at least ``min_runs``
samples *and* at least ``min_seconds`` of them (or hits ``max_seconds``). Each sample is one call,
timed with ``perf_counter_ns`` around it and nothing else; the raw samples are kept.
"""

from __future__ import annotations

import time
from dataclasses import dataclass, field
from typing import Callable


@dataclass(frozen=True)
class LoopSettings:
    warmup_s: float = 1.0
    min_runs: int = 50
    min_seconds: float = 5.0
    max_seconds: float = 120.0

    def to_dict(self) -> dict:
        return {"warmup_s": self.warmup_s, "min_runs": self.min_runs, "min_seconds": self.min_seconds,
                "max_seconds": self.max_seconds}


# A short loop for builds (every variant of every build is measured): enough for p50/p90, not p99.
QUICK = LoopSettings(warmup_s=0.3, min_runs=20, min_seconds=1.0, max_seconds=30.0)


@dataclass
class Timing:
    samples_ns: list[int] = field(default_factory=list)
    warmup_runs: int = 0
    warmup_s: float = 0.0
    loop_s: float = 0.0


def measure(fn: Callable[[], object], settings: LoopSettings) -> Timing:
    clock = time.perf_counter_ns
    t = Timing()
    start = clock()
    stop = start + int(settings.warmup_s * 1e9)
    while True:  # at least one warm-up call, then until the warm-up time is spent
        fn()
        t.warmup_runs += 1
        if clock() >= stop:
            break
    t.warmup_s = (clock() - start) / 1e9
    samples = t.samples_ns
    min_ns, max_ns, min_runs = int(settings.min_seconds * 1e9), int(settings.max_seconds * 1e9), settings.min_runs
    loop_start = clock()
    while True:
        t0 = clock()
        fn()
        t1 = clock()
        samples.append(t1 - t0)
        elapsed = t1 - loop_start
        if (len(samples) >= min_runs and elapsed >= min_ns) or elapsed >= max_ns:
            break
    t.loop_s = (clock() - loop_start) / 1e9
    return t
