"""``edgec matrix`` (run / merge / init-ci) and ``edgec cache verify``: flags -> the edgec.matrix API."""

from __future__ import annotations

import json
import sys


def add_parsers(sub, common, epilog) -> None:
    import argparse

    m = sub.add_parser("matrix", parents=[common], help="build every model x target of a project file (edgec.yaml); "
                       "also: matrix merge OUT1 OUT2 -o OUT, matrix init-ci", epilog=epilog,
                       formatter_class=argparse.RawDescriptionHelpFormatter,
                       usage="edgec matrix [edgec.yaml] -o OUT [--jobs N] [--shard I/N] [--only MODEL@TARGET ...]\n"
                             "       edgec matrix merge OUT1 OUT2 ... -o OUT [--baseline OLD/matrix.json]\n"
                             "       edgec matrix init-ci [edgec.yaml] --shards N --cache-dir s3://bucket/prefix")
    m.add_argument("items", nargs="*", metavar="ARG", help="the project file (default edgec.yaml), or `merge OUT...`, "
                   "or `init-ci [edgec.yaml]`")
    m.add_argument("-o", "--out", help="output directory (default: edgec-matrix); for init-ci the workflow file "
                   "(default .github/workflows/edgec-matrix.yml)")
    m.add_argument("--jobs", "-j", type=int, default=0, help="builds at once (default: the core count)")
    m.add_argument("--shard", help="build only slice I of N (stable, balanced; the N shards cover the matrix)")
    m.add_argument("--only", nargs="+", default=[], metavar="MODEL@TARGET", help="build only these cells")
    m.add_argument("--cache-dir", help="step cache: a directory or an fsspec URL (s3://bucket/prefix)")
    m.add_argument("--baseline", help="a previous matrix.json (or its directory): gate against it")
    m.add_argument("--fail-on", default="p50:+10%", help="the gate's bound per variant (default p50:+10%%)")
    m.add_argument("--shards", type=int, default=4, help="(init-ci) number of shard jobs")
    m.add_argument("--json", action="store_true", help="print matrix.json")
    m.add_argument("--quiet", "-q", action="store_true", help="no progress grid")

    c = sub.add_parser("cache", parents=[common], help="check the step cache: cache verify [--cache-dir DIR|URL]")
    c.add_argument("action", choices=["verify"])
    c.add_argument("--cache-dir", help="a directory or an fsspec URL (default: ~/.cache/edgec)")
    c.add_argument("--json", action="store_true")


def cmd_matrix(args) -> int:
    from edgec.errors import UsageError

    items = list(args.items)
    if items[:1] == ["merge"]:
        from edgec.matrix.report import gate, merge, write_matrix

        out = args.out or "edgec-matrix"
        record = merge(items[1:], out)
        record["gate"] = gate(record, args.baseline, args.fail_on)
        paths = write_matrix(record, __import__("pathlib").Path(out))
        return _finish(record, args, paths)
    if items[:1] == ["init-ci"]:
        from edgec.matrix import load_project
        from edgec.matrix.ci import write_workflow

        project = items[1] if len(items) > 1 else "edgec.yaml"
        load_project(project)  # the workflow is only written for a project file that validates
        if not args.cache_dir:
            raise UsageError("init-ci needs the shared cache", hint="--cache-dir s3://bucket/prefix")
        print(write_workflow(args.out or ".github/workflows/edgec-matrix.yml", project, args.shards, args.cache_dir,
                             args.baseline))
        return 0
    if len(items) > 1:
        raise UsageError(f"`edgec matrix` takes one project file, got {len(items)}: {' '.join(items)}",
                         hint="edgec matrix edgec.yaml -o OUT; use --only MODEL@TARGET to pick cells")
    if args.jobs < 0:
        raise UsageError(f"--jobs must be >= 1, got {args.jobs}")
    from pathlib import Path

    from edgec.matrix import matrix
    from edgec.matrix.plan import parse_shard
    from edgec.matrix.run import MatrixOptions

    opts = MatrixOptions(out=Path(args.out or "edgec-matrix"), jobs=args.jobs, cache_dir=args.cache_dir,
                         shard=parse_shard(args.shard), only=args.only, baseline=args.baseline,
                         fail_on=args.fail_on, quiet=args.quiet or args.json)
    from edgec.bench.gate import parse_fail_on

    parse_fail_on(args.fail_on)
    record = matrix(items[0] if items else "edgec.yaml", opts)
    return _finish(record, args, [opts.out / n for n in ("matrix.json", "matrix.md", "matrix.html")])


def _finish(record: dict, args, paths) -> int:
    failed = [c for c in record["cells"] if not c["ok"]]
    if args.json:
        print(json.dumps(record, indent=2, default=str))
    else:
        for p in paths:
            print(p)
        for c in failed:
            print(f"edgec: {c['cell']} failed (exit {c['exit_code']}): {c.get('error')}", file=sys.stderr)
    g = record.get("gate")
    if failed:
        return 17  # documented (EXIT_CODES): one or more cells failed
    if g is not None and not g["ok"]:
        return 10
    return 0


def cmd_cache(args) -> int:
    from edgec.pipeline.cache import open_cache

    cache = open_cache(args.cache_dir)
    try:
        res = cache.verify()
    finally:
        cache.close()
    if args.json:
        print(json.dumps(res, indent=2))
    else:
        print(f"{res['entries']} entries checked, {len(res['corrupt'])} corrupt"
              + "".join(f"\n  corrupt: {c}" for c in res["corrupt"]))
    return 0 if not res["corrupt"] else 18
