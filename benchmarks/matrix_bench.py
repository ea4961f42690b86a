"""The matrix costs distinct conversions, not targets: a cold 2 models x 3 targets ``edgec matrix``
against the sum of the same 6 builds run as separate cold ``edgec build`` calls (each with an empty
cache of its own), side by side on this machine.

    .venv/bin/python benchmarks/matrix_bench.py [--jobs N] [--variants fp32]

Prints both wall times, the ratio, and the matrix's distinct/computed step counts. Developer tooling.
"""

from __future__ import annotations

import argparse
import json
import sys
import tempfile
import time
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parents[1] / "tests"))
from _common import EDGEC, run_timed  # noqa: E402

TARGETS = ("rpi4", "android-arm64-cpu", "desktop-cpu")


def main() -> None:
    ap = argparse.ArgumentParser()
    ap.add_argument("--jobs", type=int, default=0)
    ap.add_argument("--variants", default="fp32,fp16,dynamic_int8")
    a = ap.parse_args()
    import edgec
    import tiny_models as tm

    with tempfile.TemporaryDirectory(prefix="edgec-matrix-bench-") as d:
        d = Path(d)
        edgec.save_torchscript(tm.seeded(tm.TinyCNN), tm.cnn_inputs(), d / "cnn.pt")
        edgec.save_torchscript(tm.seeded(tm.TwoInput), tm.two_inputs(), d / "two_input.pt")
        variants = [v for v in a.variants.split(",") if v]
        (d / "edgec.yaml").write_text(
            "models:\n" + "".join(f"  {m}:\n    path: {m}.pt\n    synthetic_validation: true\n"
                                  f"    variants: [{', '.join(variants)}]\n" for m in ("cnn", "two_input"))
            + f"targets: [{', '.join(TARGETS)}]\n")
        separate = []
        for m in ("cnn", "two_input"):
            for t in TARGETS:
                separate.append(run_timed([EDGEC, "build", str(d / f"{m}.pt"), "-t", t, "-o", str(d / f"b-{m}-{t}"),
                                           "--variants", a.variants, "--synthetic-validation", "-q",
                                           "--cache-dir", str(d / f"cache-{m}-{t}")]))
                print(f"  build {m}@{t}: {separate[-1]:.1f} s", flush=True)
        t0 = time.perf_counter()
        run_timed([EDGEC, "matrix", str(d / "edgec.yaml"), "-o", str(d / "m"), "--cache-dir", str(d / "cache-matrix"),
                   "-q", *(["--jobs", str(a.jobs)] if a.jobs else [])])
        matrix_s = time.perf_counter() - t0
        rec = json.loads((d / "m" / "matrix.json").read_text())
    total = sum(separate)
    print(f"6 separate cold builds: sum {total:.1f} s (median {sorted(separate)[3]:.1f} s each)")
    print(f"2x3 matrix cold (jobs {rec['jobs']}): {matrix_s:.1f} s; distinct steps {rec['distinct_steps']}")
    print(f"ratio matrix / separate: {matrix_s / total:.2f}")


if __name__ == "__main__":
    main()
