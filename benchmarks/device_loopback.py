"""The same model timed locally and on a loopback "board" over ssh (a real sshd started here, the
board's python = this venv), interleaved: the p50s side by side (the same loop on the same CPU
should agree within run-to-run noise) and the wall time the ssh round trips add.

    .venv/bin/python benchmarks/device_loopback.py MODEL.tflite [--rounds 3] [--threads 1]
"""

from __future__ import annotations

import argparse
import statistics
import sys
import tempfile
import time
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parents[1] / "tests"))


def main() -> None:
    ap = argparse.ArgumentParser()
    ap.add_argument("model")
    ap.add_argument("--rounds", type=int, default=3)
    ap.add_argument("--threads", type=int, default=1)
    a = ap.parse_args()
    import os

    from edgec.bench import LoopSettings, bench_artifact
    from edgec.bench.remote import SSHDevice
    from sshd import Sshd

    loop = LoopSettings(warmup_s=0.5, min_runs=50, min_seconds=2.0)
    local, remote, walls_l, walls_r = [], [], [], []
    with tempfile.TemporaryDirectory() as tmp, Sshd(Path(tmp)) as s:
        os.environ["EDGEC_SSH_OPTIONS"] = s.env["EDGEC_SSH_OPTIONS"]
        for _ in range(a.rounds):
            t0 = time.perf_counter()
            local.append(bench_artifact(a.model, "rpi4", threads=a.threads, loop=loop, compat=False)["p50_ms"])
            walls_l.append(time.perf_counter() - t0)
            t0 = time.perf_counter()
            dev = SSHDevice(s.url, sys.executable, str(s.key))
            remote.append(bench_artifact(a.model, "rpi4", threads=a.threads, loop=loop, compat=False,
                                         device=dev)["p50_ms"])
            walls_r.append(time.perf_counter() - t0)
    med = statistics.median
    print(f"{a.rounds} interleaved rounds, {a.threads} thread(s), loop {loop.to_dict()}")
    print(f"p50 local    : median {med(local):.4f} ms  (runs: {', '.join(f'{x:.4f}' for x in local)})")
    print(f"p50 ssh board: median {med(remote):.4f} ms  (runs: {', '.join(f'{x:.4f}' for x in remote)})")
    print(f"ratio board/local p50: {med(remote) / med(local):.3f}")
    print(f"wall per bench: local {med(walls_l):.2f} s, ssh board {med(walls_r):.2f} s "
          f"(+{med(walls_r) - med(walls_l):.2f} s for facts, copies, clean-up)")


if __name__ == "__main__":
    main()
