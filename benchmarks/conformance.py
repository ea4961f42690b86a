"""ONNX backend node-test conformance of edgec: every case built, run and classified.

    .venv/bin/python benchmarks/conformance.py [--jobs N] [--only PATTERN] [--limit N] [--subset fast]
                                               [--out DIR] [--cache-dir DIR] [--timeout S] [--batch N] [--resume]
    .venv/bin/python benchmarks/conformance.py --summary-only [--out DIR]

The data (1765 cases) comes from the onnx==1.22.0 wheel, downloaded with pip and extracted once into
``$EDGEC_CONFORMANCE_DIR`` (default ``~/.cache/edgec-conformance``); the pinned onnx in the venv stays.
Cases run in child processes (``benchmarks/conformance_cases.py``, which also holds the classes and the fast
subset), up to ``--batch`` cases one after another per child; a case that kills its child or times out is
recorded as a crash and a fresh child takes the rest. Writes ``OUT/conformance.json`` (per-case records, rewritten as cases
finish, so ``--resume`` can continue an interrupted run) and ``OUT/conformance.md``.
"""

from __future__ import annotations

import argparse
import json
import os
import sys
import tempfile
import time
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parent))

import conformance_cases as cc  # noqa: E402

DEFAULT_OUT = Path(__file__).resolve().parent / "results"
CLASS_NOTES = {
    "pass": "built; fp32 TFLite outputs match the expected ones",
    "clean_error": "edgec refused with an EdgecError (not ParityError)",
    "crash": "a non-EdgecError exception escaped edgec, the process died, or it timed out",
    "flagged": "outputs wrong, and the parity ledger failed",
    "silent_wrong": "outputs wrong, but the parity ledger said ok",
    "false_alarm": "the parity ledger failed, but the outputs match the expected ones",
    "not_run": "the harness cannot feed or check the case (sequence/optional/INT2 data); edgec was still run",
}


def parse_args(argv=None) -> argparse.Namespace:
    ap = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    ap.add_argument("--jobs", type=int, default=1, help="cases at a time (each a child process; default 1)")
    ap.add_argument("--only", help="comma-separated substrings or globs of case names")
    ap.add_argument("--limit", type=int, help="at most N cases, stratified by op")
    ap.add_argument("--subset", choices=("fast", "all"), default="all", help="fast: the ~40 FAST_SUBSET cases")
    ap.add_argument("--out", type=Path, default=DEFAULT_OUT, help=f"results folder (default {DEFAULT_OUT})")
    ap.add_argument("--cache-dir", type=Path, help="edgec step cache shared by the cases "
                    "(default: DATA_DIR/edgec-cache)")
    ap.add_argument("--data-dir", type=Path, help="conformance data cache (default $EDGEC_CONFORMANCE_DIR or "
                    "~/.cache/edgec-conformance)")
    ap.add_argument("--batch", type=int, default=20, help="cases per child process, one after another "
                    "(TensorFlow imported once; a crash or timeout costs only that case); 1: a child per case "
                    "(default 20)")
    ap.add_argument("--timeout", type=float, default=cc.DEFAULT_TIMEOUT, help="seconds per case (default 300)")
    ap.add_argument("--resume", action="store_true", help="keep the records of OUT/conformance.json, run the rest")
    ap.add_argument("--keep", action="store_true", help="keep each case's work folder (build, log)")
    ap.add_argument("--summary-only", action="store_true", help="only regenerate OUT/conformance.md from the json")
    ap.add_argument("--quiet", action="store_true", help="no line per case")
    args = ap.parse_args(argv)
    if args.jobs < 1:
        ap.error("--jobs must be >= 1")
    return args


def main(argv=None) -> int:
    args = parse_args(argv)
    out = args.out
    json_path, md_path = out / "conformance.json", out / "conformance.md"
    if args.summary_only:
        if not json_path.is_file():
            print(f"no {json_path}: run without --summary-only first", file=sys.stderr)
            return 2
        data = json.loads(json_path.read_text())
        write_md(md_path, data["meta"], data["cases"])
        print_summary(data["cases"])
        print(f"wrote {md_path}")
        return 0
    try:
        node = cc.ensure_data(args.data_dir)
    except cc.DataUnavailable as exc:
        print(f"conformance data unavailable: {exc}", file=sys.stderr)
        return 2
    cases = cc.list_cases(node)
    ops = {c: cc.case_op(node / c) for c in cases}
    chosen = cc.select(cases, only=args.only, subset=args.subset, limit=args.limit, ops=ops)
    if not chosen:
        print("no case matches the selection", file=sys.stderr)
        return 2
    cache_dir = args.cache_dir or (node.parent.parent / "edgec-cache")
    cache_dir.mkdir(parents=True, exist_ok=True)
    out.mkdir(parents=True, exist_ok=True)
    done: dict[str, dict] = {}
    if args.resume and json_path.is_file():
        done = {r["case"]: r for r in json.loads(json_path.read_text())["cases"] if r["case"] in set(chosen)}
    todo = [c for c in chosen if c not in done]
    meta = {"data": f"onnx=={cc.ONNX_WHEEL_VERSION} onnx/backend/test/data/node", "data_dir": str(node),
            "target": cc.TARGET, "variants": ["fp32"], "rtol": cc.RTOL, "atol": cc.ATOL,
            "selection": {"subset": args.subset, "only": args.only, "limit": args.limit,
                          "cases": len(chosen), "available": len(cases)},
            "jobs": args.jobs, "batch": args.batch, "timeout_s": args.timeout, "started": time.strftime("%Y-%m-%dT%H:%M:%S"),
            "environment": _environment(), "classes": CLASS_NOTES}
    print(f"{len(todo)} case(s) to run ({len(done)} kept), {args.jobs} at a time; data {node}; "
          f"edgec cache {cache_dir}", flush=True)
    records = dict(done)
    t0 = time.perf_counter()
    work_root = Path(tempfile.mkdtemp(prefix="edgec-conformance-"))

    def on_record(rec, n, total):
        records[rec["case"]] = rec
        if not args.quiet:
            why = f"  {rec['reason'][:150]}" if rec["class"] != "pass" and rec.get("reason") else ""
            print(f"[{n}/{total}] {rec['case']} ({rec['op']}): {rec['class']} {rec['seconds']:.1f}s{why}", flush=True)
        if n % 5 == 0 or n == total:
            _write_json(json_path, meta, records)

    try:
        cc.run_many(todo, node, work_root, cache_dir, jobs=args.jobs, timeout=args.timeout, keep=args.keep,
                    ops=ops, on_record=on_record, batch=args.batch)
    finally:
        meta["wall_seconds"] = round(time.perf_counter() - t0, 1)
        _write_json(json_path, meta, records)
        if not args.keep:
            import shutil

            shutil.rmtree(work_root, ignore_errors=True)
    recs = sorted(records.values(), key=lambda r: r["case"])
    write_md(md_path, meta, recs)
    print_summary(recs)
    print(f"wrote {json_path} and {md_path}")
    return 0


def _environment() -> dict:
    from importlib import metadata

    env = {}
    for d in ("edgec", "onnx", "onnxruntime", "onnx2tf", "tensorflow", "ai-edge-litert", "numpy"):
        try:
            env[d] = metadata.version(d)
        except metadata.PackageNotFoundError:
            env[d] = "not installed"
    env["cpu_count"] = os.cpu_count()
    return env


def _write_json(path: Path, meta: dict, records: dict) -> None:
    data = {"meta": meta, "counts": cc.counts(list(records.values())),
            "cases": sorted(records.values(), key=lambda r: r["case"])}
    tmp = path.with_name(path.name + ".tmp")
    tmp.write_text(json.dumps(data, indent=1, default=str))
    os.replace(tmp, path)


# -- rendering ------------------------------------------------------------------------------------

def print_summary(records: list[dict]) -> None:
    c = cc.counts(records)
    print(f"\n{len(records)} case(s): " + ", ".join(f"{k} {v}" for k, v in c.items()))
    print(_op_table(records, markdown=False))


def _op_table(records: list[dict], markdown: bool) -> str:
    cols = [k for k in cc.CLASSES if any(r["class"] == k for r in records)] or ["pass"]
    rows = [(op, sum(v.values()), *[v.get(k, 0) for k in cols]) for op, v in cc.per_op(records).items()]
    head = ("op", "cases", *cols)
    if markdown:
        lines = ["| " + " | ".join(head) + " |", "|" + "---|" * len(head)]
        lines += ["| " + " | ".join(str(x) if x != 0 else "" for x in row) + " |" for row in rows]
        return "\n".join(lines)
    w = max([len(head[0])] + [len(r[0]) for r in rows])
    fmt = f"{{:<{w}}}  " + "  ".join(f"{{:>{max(5, len(h))}}}" for h in head[1:])
    return "\n".join([fmt.format(*head)] + [fmt.format(*r) for r in rows])


def _groups(records: list[dict]) -> list[tuple[str, list[dict]]]:
    groups: dict[str, list[dict]] = {}
    for r in records:
        groups.setdefault(cc.reason_group(r), []).append(r)
    return sorted(groups.items(), key=lambda kv: (-len(kv[1]), kv[0]))


def _md_escape(s: str) -> str:
    return (s or "").replace("|", "\\|").replace("\n", " ")


def write_md(path: Path, meta: dict, records: list[dict]) -> None:
    c = cc.counts(records)
    sel = meta.get("selection", {})
    env = meta.get("environment", {})
    lines = [
        "# ONNX backend node-test conformance",
        "",
        f"Data: {meta.get('data')} ({sel.get('cases')} of {sel.get('available')} cases; subset "
        f"`{sel.get('subset')}`, only `{sel.get('only')}`, limit `{sel.get('limit')}`). Target `{meta.get('target')}`, "
        f"fp32 only, the case's own inputs as validation data, default route; outputs of the fp32 TFLite "
        f"compared with the expected ones (rtol {meta.get('rtol')}, atol {meta.get('atol')}; ints/bools exact).",
        f"Started {meta.get('started')}, {meta.get('jobs')} job(s), timeout {meta.get('timeout_s')} s per case"
        + (f", wall {meta['wall_seconds']} s" if meta.get("wall_seconds") is not None else "") + ". "
        + ", ".join(f"{k} {v}" for k, v in env.items()) + ".",
        "",
        "## Summary",
        "",
        "| class | cases | meaning |",
        "|---|---|---|",
    ]
    lines += [f"| {k} | {c.get(k, 0)} | {CLASS_NOTES.get(k, '')} |" for k in cc.CLASSES]
    lines += [f"| **total** | **{len(records)}** | |", ""]
    ref_bad = [r for r in records if r.get("reference_ok") is False]
    if ref_bad:
        lines += [f"onnxruntime itself disagrees with the expected outputs on {len(ref_bad)} of the built cases "
                  f"(`reference_ok: false` in the json): the ledger compares against onnxruntime, so it cannot "
                  f"see those errors.", ""]
    for cls, title in (("crash", "Crashes"), ("silent_wrong", "Silently wrong")):
        sub = [r for r in records if r["class"] == cls]
        lines += [f"## {title} ({len(sub)})", ""]
        if not sub:
            lines += ["None.", ""]
            continue
        if cls == "crash":
            lines += ["Grouped by where the exception came from:", "", "| cases | group | example | exception |",
                      "|---|---|---|---|"]
            for g, rs in _groups(sub):
                lines.append(f"| {len(rs)} | {_md_escape(g)} | {rs[0]['case']} | {_md_escape(rs[0]['reason'][:200])} |")
            lines.append("")
        lines += ["| case | op | reason | reference ok |", "|---|---|---|---|"]
        lines += [f"| {r['case']} | {r['op']} | {_md_escape(r.get('reason', '')[:300])} | {r.get('reference_ok', '')} |"
                  for r in sub]
        lines.append("")
    lines += ["## Clean errors by kind", "", "| cases | error | example |", "|---|---|---|"]
    ce: dict[str, list[dict]] = {}
    for r in records:
        if r["class"] == "clean_error":
            ce.setdefault(_clean_key(r), []).append(r)
    for k, rs in sorted(ce.items(), key=lambda kv: -len(kv[1])):
        lines.append(f"| {len(rs)} | {_md_escape(k)} | {rs[0]['case']}: {_md_escape(rs[0]['reason'][:200])} |")
    lines += ["", "## Per op", "", _op_table(records, markdown=True), ""]
    path.parent.mkdir(parents=True, exist_ok=True)
    path.write_text("\n".join(lines))


def _clean_key(r: dict) -> str:
    import re

    reason = r.get("reason", "")
    reason = re.sub(r"/\S*/(validation\.npz|model\.onnx)", r"\1", reason)
    reason = re.sub(r"^(\w+Error): model\.onnx: ", r"\1: ", reason)
    reason = re.sub(r"'[^']*'", "'…'", reason)
    reason = re.sub(r"\[[^\]]*\]", "[…]", reason)
    reason = re.sub(r"\d+(\.\d+)?", "N", reason)
    return reason[:110]


if __name__ == "__main__":
    sys.exit(main())
