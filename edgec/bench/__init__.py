"""``edgec bench``: measure an artifact here with a target profile's runtime and threads, estimate it
on the profile's device when that is not this machine, and check it against the device's runtime.

Measured numbers (``p50_ms`` ...) and the estimate (``estimate``, ``estimated: true``) are kept
apart in the record; nothing measured here is ever presented as a device number.
"""

from __future__ import annotations

from edgec.bench.devices import Device, LocalDevice  # noqa: F401  (the package's API)
from edgec.bench.measure import UNMEASURED, bench_artifact, variant_of  # noqa: F401
from edgec.bench.timing import QUICK, LoopSettings  # noqa: F401


def bench(cfg) -> dict:
    """The API behind ``edgec bench``: a ``BenchConfig`` in, the record (and the gate's verdict) out."""
    loop = LoopSettings(cfg.warmup_s, cfg.min_runs, cfg.min_seconds, cfg.max_seconds)
    if getattr(cfg, "device_pool", None):
        from edgec.bench.pool import bench_pool

        return bench_pool(cfg, loop)
    device = None
    if getattr(cfg, "device", None):
        from edgec.bench.connect import make_device

        device = make_device(cfg.device)
    record = bench_artifact(cfg.artifact, cfg.target, threads=cfg.threads, loop=loop, inputs=cfg.inputs,
                            seed=cfg.seed, variant=cfg.variant, compat=cfg.compat, device=device)
    if cfg.baseline:
        from edgec.bench.gate import compare, load_baseline

        record["gate"] = compare(load_baseline(cfg.baseline, record.get("variant")), record, cfg.fail_on)
    return record
