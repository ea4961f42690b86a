"""Warm rebuild: the same `edgec build` again with the same cache, as a fresh process each time.

Builds once cold (printed for reference), then times N warm rebuilds of the same model into the
same output directory with the same --cache-dir; every step and the parity ledger come from the
cache. Prints the median and the max. Target: median warm rebuild <= 1.5 s.

    .venv/bin/python benchmarks/warm_rebuild.py [--model efficientnet-lite0|tiny] [--runs N]
"""

from __future__ import annotations

import argparse
import json
import sys
import tempfile
from pathlib import Path

from _common import EDGEC, MODELS, median, run_timed, save_model

TARGET_SECONDS = 1.5


def main() -> int:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--model", choices=MODELS, default="efficientnet-lite0")
    ap.add_argument("--runs", type=int, default=5, help="warm rebuilds to time")
    args = ap.parse_args()
    with tempfile.TemporaryDirectory(prefix="edgec-bench-") as tmp:
        tmp = Path(tmp)
        model = tmp / "model.pt"
        save_model(args.model, model)
        cmd = [EDGEC, "build", str(model), "--target", "desktop-cpu", "--variants", "fp32",
               "-o", str(tmp / "out"), "--cache-dir", str(tmp / "cache"), "-q", "--synthetic-validation"]
        cold = run_timed(cmd)
        warm = [run_timed(cmd) for _ in range(args.runs)]
        steps = json.loads((tmp / "out" / "manifest.json").read_text())["steps"]
    assert all(s["cached"] for s in steps), "a warm rebuild re-ran a step"
    ok = median(warm) <= TARGET_SECONDS
    print(f"model {args.model}: cold build {cold:.2f} s")
    print(f"warm rebuild x{args.runs}: median {median(warm):.3f} s, max {max(warm):.3f} s "
          f"(target <= {TARGET_SECONDS} s) -> {'PASS' if ok else 'FAIL'}")
    return 0 if ok else 1


if __name__ == "__main__":
    sys.exit(main())
