"""The routes of a `--compare-routes` build side by side, for EfficientNet-Lite0 (pretrained, from
PyPI, via --factory): per route its attempt time (cold: a fresh cache; the conversion to fp32 plus
the attempt's fp32 parity check on 40 real photos), its fp32 TFLite's p50 on this machine, size and
TRANSPOSE count.

The p50s are re-measured here in one run with the same thread count, the routes interleaved
round by round (``--rounds``), each round edgec's timing loop per route, and the median of the
rounds' p50s is printed, so machine noise hits every route alike. The build's own `measured.p50_ms`
(one quick loop per route, one after the other) is printed beside it.

    .venv/bin/python benchmarks/routes_compare.py [--rounds 5] [--threads 2] [--source factory|pt2]
"""

from __future__ import annotations

import argparse
import json
import sys
import tempfile
import time
from pathlib import Path

from _common import median

FACTORY = "edgec.data.examples:efficientnet_lite0"


def _source(kind: str, d: Path) -> dict:
    if kind == "factory":
        return {"factory": FACTORY}
    import torch

    from edgec.data.examples import efficientnet_lite0

    model, example = efficientnet_lite0()
    pt2 = d / "efficientnet_lite0.pt2"
    torch.export.save(torch.export.export(model.eval(), tuple(example)), str(pt2))
    return {"model": str(pt2)}


def main() -> int:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--rounds", type=int, default=5)
    ap.add_argument("--threads", type=int, default=2)
    ap.add_argument("--source", choices=["factory", "pt2"], default="factory")
    args = ap.parse_args()

    import edgec
    from edgec.bench import bench_artifact
    from edgec.bench.timing import LoopSettings
    from edgec.data.examples import photo_sets
    from edgec.targets import load_target

    with tempfile.TemporaryDirectory(prefix="edgec-routes-bench-") as d:
        d = Path(d)
        calibration, validation = photo_sets(d / "photos")
        cfg = edgec.BuildConfig(target="rpi4", out=str(d / "out"), cache_dir=str(d / "cache"), compare_routes=True,
                                variants=("fp32",), validation_data=str(validation), validation_samples=40,
                                **_source(args.source, d))
        t0 = time.perf_counter()
        res = edgec.build(cfg)
        total = time.perf_counter() - t0
        rs = res.manifest["route_search"]
        out = d / "out"
        files = {}
        for a in rs["attempts"]:
            if not a.get("ok"):
                continue
            rel = "model_fp32.tflite" if a.get("chosen") else \
                next(x["path"] for x in a.get("artifacts", []) if x["variant"] == "fp32")
            files[" -> ".join(a["route"])] = out / rel
        target = load_target("rpi4")
        loop = LoopSettings(warmup_s=0.5, min_runs=50, min_seconds=2.0, max_seconds=30.0)
        p50s: dict[str, list[float]] = {k: [] for k in files}
        for _ in range(args.rounds):
            for label, path in files.items():
                rec = bench_artifact(path, target, threads=args.threads, loop=loop, variant="fp32")
                p50s[label].append(rec["p50_ms"])
        rows = []
        for a in rs["attempts"]:
            label = " -> ".join(a["route"])
            mes = a.get("measured") or {}
            rows.append({"route": label, "ok": a["ok"], "chosen": bool(a.get("chosen")),
                         "conversion_s": a["seconds"], "p50_ms": median(p50s[label]) if label in p50s else None,
                         "p50_rounds": p50s.get(label), "build_p50_ms": mes.get("p50_ms"), "mb": mes.get("bytes", 0) / 1e6,
                         "transposes": mes.get("transposes"), "fp32_max_abs": (a.get("parity") or {}).get("max_abs")})
    print(f"EfficientNet-Lite0 ({args.source}), --compare-routes for rpi4, fp32; build {total:.1f} s; "
          f"p50: median of {args.rounds} interleaved rounds, {args.threads} threads")
    print(f"{'route':45s} {'attempt s':>9s} {'p50 ms':>8s} {'build p50':>9s} {'MB':>6s} {'TRANSPOSE':>9s} "
          f"{'max abs':>8s}  chosen")
    for r in rows:
        p50 = f"{r['p50_ms']:.2f}" if r["p50_ms"] is not None else "-"
        bp = f"{r['build_p50_ms']:.2f}" if r["build_p50_ms"] is not None else "-"
        mx = f"{r['fp32_max_abs']:.1e}" if r["fp32_max_abs"] is not None else "-"
        print(f"{r['route']:45s} {r['conversion_s']:9.1f} {p50:>8s} {bp:>9s} {r['mb']:6.2f} "
              f"{str(r['transposes']):>9s} {mx:>8s}  {'yes' if r['chosen'] else ''}")
    print(f"chosen: {rs['reason']}")
    print(json.dumps({"rows": rows, "reason": rs["reason"], "build_s": round(total, 1)}), file=sys.stderr)
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
