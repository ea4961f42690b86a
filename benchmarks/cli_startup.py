"""CLI start-up: how long `edgec --help` and `edgec targets` take, and what they import.

Times each command as a fresh process (N runs, median; `python -c pass` as the floor), then runs
`import edgec.cli.main`, `edgec --help` and `edgec targets` under `python -X importtime` and
checks that none of the heavy stacks (torch, tensorflow, onnx2tf, mediapipe) is imported.
Target: `edgec --help` median <= 0.25 s, and no heavy import.

    .venv/bin/python benchmarks/cli_startup.py [--runs N]
"""

from __future__ import annotations

import argparse
import subprocess
import sys

from _common import BIN, EDGEC, env, median, run_timed

TARGET_HELP_SECONDS = 0.25
HEAVY = ("torch", "tensorflow", "onnx2tf", "mediapipe")
PY = str(BIN / "python")


def imported_modules(args: list[str]) -> set[str]:
    """Top-level names of every module imported by `python -X importtime ARGS`."""
    p = subprocess.run([PY, "-X", "importtime", *args], env=env(), capture_output=True, text=True, timeout=120)
    if p.returncode != 0:
        sys.exit(f"failed: python -X importtime {' '.join(args)}\n{p.stderr[-2000:]}")
    names = set()
    for line in p.stderr.splitlines():
        if line.startswith("import time:") and "|" in line:
            name = line.rsplit("|", 1)[1].strip()
            if name != "package":  # the header line
                names.add(name.split(".")[0])
    return names


def main() -> int:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--runs", type=int, default=20)
    args = ap.parse_args()
    cases = {"python -c pass": [PY, "-c", "pass"], "edgec --help": [EDGEC, "--help"],
             "edgec targets": [EDGEC, "targets"]}
    times = {name: [] for name in cases}
    for _ in range(args.runs):  # interleaved, so machine noise hits every case alike
        for name, cmd in cases.items():
            times[name].append(run_timed(cmd))
    for name, ts in times.items():
        print(f"{name:<16} median {median(ts) * 1000:6.1f} ms   max {max(ts) * 1000:6.1f} ms   ({args.runs} runs)")
    ok = median(times["edgec --help"]) <= TARGET_HELP_SECONDS
    print(f"edgec --help target <= {TARGET_HELP_SECONDS * 1000:.0f} ms -> {'PASS' if ok else 'FAIL'}")
    for label, argv in [("import edgec.cli.main", ["-c", "import edgec.cli.main"]),
                        ("edgec --help", [EDGEC, "--help"]), ("edgec targets", [EDGEC, "targets"])]:
        heavy = sorted(imported_modules(argv) & set(HEAVY))
        ok &= not heavy
        print(f"-X importtime {label:<22} heavy imports: {', '.join(heavy) if heavy else 'none'}")
    return 0 if ok else 1


if __name__ == "__main__":
    sys.exit(main())
