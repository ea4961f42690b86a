"""``edgec bench`` and ``edgec estimate``: flags -> BenchConfig -> ``edgec.bench.bench``; and the
resolved settings ``edgec targets show`` prints. Light at import time (no numpy, no runtime)."""

from __future__ import annotations

import argparse
import json
import os

REGRESSION_EXIT = 10
UNMEASURED_EXIT = 12   # the gate had nothing to compare (see edgec/bench/gate.py); --allow-unmeasured lets it pass


def add_parsers(sub, common, epilog: str) -> None:
    fmt = argparse.RawDescriptionHelpFormatter
    b = sub.add_parser("bench", parents=[common], epilog=epilog, formatter_class=fmt,
                       help="measure a .tflite/.onnx here with a target's runtime; estimate it on the target device")
    b.add_argument("artifact", help="a .tflite (or, for desktop-gpu, .onnx) file")
    b.add_argument("--target", "-t", default="desktop-cpu", help="target profile name or file")
    b.add_argument("--threads", type=int, help="threads (default: the profile's, capped at this machine's cores)")
    b.add_argument("--variant", help="the artifact's variant (default: read from the model)")
    b.add_argument("--warmup", type=float, default=1.0, metavar="S", help="warm-up seconds (default 1)")
    b.add_argument("--min-runs", type=int, default=50, metavar="N", help="at least N timed runs (default 50)")
    b.add_argument("--min-seconds", type=float, default=5.0, metavar="S", help="and at least S seconds (default 5)")
    b.add_argument("--inputs", metavar="FILE.npz", help="inputs by name (default: seeded synthetic inputs)")
    b.add_argument("--no-compat", action="store_true", help="skip the on-device runtime check")
    b.add_argument("--baseline", metavar="FILE", help="a stored `edgec bench --json` (or manifest.json) to compare with")
    b.add_argument("--fail-on", metavar="METRIC:+N%", help="exit 10 when METRIC (p50, p90, p99, mean, min) exceeds "
                   "the baseline by more than N%% plus the runs' noise margin; exit 12 when the baseline or this run "
                   "has no measurement")
    b.add_argument("--allow-unmeasured", action="store_true", help="let the gate pass (exit 0, verdict still "
                   "'unmeasured') when the baseline or this run has no measurement")
    b.add_argument("--summary", metavar="FILE.md", help="write a Markdown summary (also appended to "
                   "$GITHUB_STEP_SUMMARY when that is set)")
    b.add_argument("--output", "-o", metavar="FILE.json", help="also write the JSON record here (a future baseline)")
    b.add_argument("--json", action="store_true", help="print the record as JSON")
    from edgec.cli.device_args import add_device_arguments

    add_device_arguments(b)  # --device ssh://... | adb://..., --device-pool devices.yaml

    e = sub.add_parser("estimate", parents=[common], help="estimated latency of a .tflite on a target device "
                       "(no measurement); --loo prints the estimator's leave-one-out errors")
    e.add_argument("artifact", nargs="?", help="a .tflite file")
    e.add_argument("--target", "-t", default="rpi4")
    e.add_argument("--variant", help="the artifact's variant (default: read from the model)")
    e.add_argument("--loo", action="store_true", help="print the leave-one-out errors on the reference table")
    e.add_argument("--json", action="store_true")


def cmd_bench(args) -> int:
    from edgec.bench import bench
    from edgec.bench.gate import markdown
    from edgec.bench.report import render
    from edgec.pipeline.config import BenchConfig
    from edgec.cli.device_args import device_spec

    cfg = BenchConfig(artifact=args.artifact, target=args.target, threads=args.threads, variant=args.variant,
                      warmup_s=args.warmup, min_runs=args.min_runs, min_seconds=args.min_seconds, inputs=args.inputs,
                      compat=not args.no_compat, baseline=args.baseline, fail_on=args.fail_on,
                      device=device_spec(args), device_pool=args.device_pool)
    record = bench(cfg)
    gate = record.get("gate")
    if gate and gate.get("verdict") == "unmeasured" and args.allow_unmeasured:
        gate.update(ok=True, allowed=True)
    if "pool" in record:  # --device-pool: one record per board
        from edgec.bench.pool import render_pool

        print(json.dumps(record, indent=2, default=str) if args.json else render_pool(record))
        return 0 if record["ok"] else next(r["exit_code"] for r in record["boards"] if "error" in r)
    text = json.dumps(record, indent=2, default=str)
    if args.output:
        with open(args.output, "w") as f:
            f.write(text + "\n")
    print(text if args.json else render(record))
    md = markdown(record)
    if args.summary:
        with open(args.summary, "w") as f:
            f.write(md)
    if os.environ.get("GITHUB_STEP_SUMMARY"):
        with open(os.environ["GITHUB_STEP_SUMMARY"], "a") as f:
            f.write(md)
    if not gate or gate["ok"]:
        return 0
    return UNMEASURED_EXIT if gate["verdict"] == "unmeasured" else REGRESSION_EXIT


def cmd_estimate(args) -> int:
    from edgec.errors import UsageError
    from edgec.targets import load_target

    target = load_target(args.target)
    out: dict = {}
    if args.loo or not args.artifact:
        from edgec.bench.estimate import loo_report

        out["leave_one_out"] = loo_report(target)
    if args.artifact:
        from edgec.bench import variant_of
        from edgec.bench.estimate import estimate_artifact

        if target.is_host:
            raise UsageError(f"{target.name} is this machine: measure it with `edgec bench`, not an estimate")
        out["estimate"] = estimate_artifact(args.artifact, target, args.variant or variant_of(args.artifact))
    print(json.dumps(out, indent=2, default=str) if args.json else _render_estimate(out))
    return 0


def _error_rows(rows: list[dict]) -> list[str]:
    from edgec.validate.table import align

    table = [["model", "device", "precision", "threads", "published ms", "predicted ms", "error", "band ms", "source"]]
    for r in rows:
        band = f"{r['low_ms']:.2f}-{r['high_ms']:.2f}{'' if r['in_band'] else ' MISSED'}" if "in_band" in r else ""
        table.append([r["model"], r["device"], r["precision"], str(r["threads"] or "-"), f"{r['published_ms']:.2f}",
                      "-" if r["predicted_ms"] is None else f"{r['predicted_ms']:.2f}",
                      "n/a" if r["error_pct"] is None else f"{r['error_pct']:+.1f}%", band, r["source"]])
    return align(table, right=(3, 4, 5, 6), indent="  ")


def _render_estimate(out: dict) -> str:
    lines = []
    for cls, rep in out.get("leave_one_out", {}).items():
        lines.append(f"leave-one-out on the fitted reference rows, {cls} ({rep['predicted']} predictable rows): "
                     f"median |error| {rep['median_abs_error_pct']}%, max {rep['max_abs_error_pct']}%  (fit: {rep['fit']})")
        lines += _error_rows(rep["rows"])
        held = rep.get("holdout")
        if held:
            lines.append(f"held-out reference rows (never fitted), {cls} ({held['predicted']} predicted): median "
                         f"|error| {held['median_abs_error_pct']}%, max {held['max_abs_error_pct']}%, "
                         f"{held['in_band']} of {held['predicted']} inside the leave-one-out band")
            lines += _error_rows(held["rows"])
    if "estimate" in out:
        from edgec.bench.report import _estimate

        lines += _estimate(out["estimate"])
    return "\n".join(lines)


def resolved_settings(target, args) -> dict:
    from edgec.targets.settings import resolve

    config = {}
    if getattr(args, "config", None):
        from edgec.pipeline.config import load_config_file

        config = load_config_file(args.config)
    cli = {"threads": getattr(args, "threads", None),
           "variants": [v for v in args.variants.split(",") if v] if getattr(args, "variants", None) else None}
    return resolve(target, config, cli)
