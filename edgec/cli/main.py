"""The ``edgec`` command: thin adapters from flags to the same config objects and API a Python user
calls. Only this module exits the process; ``EdgecError``s become one line and a documented code."""

from __future__ import annotations

import argparse
import json
import sys

from edgec.errors import EXIT_CODES, EdgecError

EPILOG = "exit codes:\n" + "\n".join(f"  {k:>3}  {v}" for k, v in EXIT_CODES.items())


def _parser() -> argparse.ArgumentParser:
    p = argparse.ArgumentParser(prog="edgec", description="Compile a trained model for an edge target, prove "
                                "it is still right, and measure it.", epilog=EPILOG,
                                formatter_class=argparse.RawDescriptionHelpFormatter)
    common = argparse.ArgumentParser(add_help=False)
    common.add_argument("--debug", action="store_true", default=argparse.SUPPRESS,
                        help="show full tracebacks and tool logs")
    p.add_argument("--debug", action="store_true", help="show full tracebacks and tool logs")
    p.add_argument("--version", action="store_true", help="print the version and exit")
    sub = p.add_subparsers(dest="command", metavar="COMMAND")

    _add_build_parser(sub, common)

    i = sub.add_parser("inspect", parents=[common], help="show a model's inputs, outputs, ops and parameters")
    i.add_argument("model")
    i.add_argument("--json", action="store_true")
    i.add_argument("--trust-pickle", action="store_true")

    t = sub.add_parser("targets", parents=[common], help="list target profiles, or show one")
    t.add_argument("action", nargs="?", choices=["list", "show"], default="list")
    t.add_argument("name", nargs="?", help="profile name or file (for show)")
    t.add_argument("--json", action="store_true")
    t.add_argument("--config", help="(show) a config file whose settings override the profile's")
    t.add_argument("--threads", type=int, help="(show) threads, overriding config and profile")
    t.add_argument("--variants", help="(show) comma-separated variants, overriding config and profile")

    r = sub.add_parser("report", parents=[common], help="regenerate report.md/report.html of a build, or "
                       "compare two builds")
    r.add_argument("builds", nargs="+", metavar="OUT", help="one build directory, or two to compare (A B)")
    r.add_argument("-o", "--out", help="where a comparison goes (default: the second build's directory)")
    r.add_argument("--tensorboard", metavar="DIR", help="also export the numbers as TensorBoard event files")

    from edgec.cli.bench_cmd import add_parsers
    from edgec.cli.bundle_cmd import add_parsers as add_bundle_parsers
    from edgec.cli.parity_cmd import add_parsers as add_parity_parsers

    add_parsers(sub, common, EPILOG)
    add_bundle_parsers(sub, common, EPILOG)
    add_parity_parsers(sub, common, EPILOG)
    from edgec.cli.serve_cmd import add_parsers as add_serve_parsers

    add_serve_parsers(sub, common, EPILOG)

    from edgec.cli.matrix_cmd import add_parsers as add_matrix_parsers

    add_matrix_parsers(sub, common, EPILOG)  # edgec matrix ..., edgec cache verify
    from edgec.cli.doctor_cmd import add_parser as add_doctor_parser

    add_doctor_parser(sub, common, EPILOG)
    d = sub.add_parser("demo", parents=[common], help="build the built-in real example: pretrained EfficientNet-Lite0 for rpi4")
    d.add_argument("-o", "--out", default="edgec-demo")
    d.add_argument("--target", default="rpi4")
    d.add_argument("--cache-dir")
    return p


def _add_build_parser(sub, common) -> None:
    b = sub.add_parser("build", parents=[common], help="convert a model for a target (PyTorch/ONNX/TF/Keras -> TFLite)",
                       epilog=EPILOG, formatter_class=argparse.RawDescriptionHelpFormatter)
    b.add_argument("model", nargs="?", help="model file: .pt (TorchScript), .pt2 (torch.export), .onnx, "
                   ".keras/.h5, .tflite, or a SavedModel directory")
    b.add_argument("--target", "-t", help="target profile name (see `edgec targets`) or a profile file")
    b.add_argument("-o", "--out", help="output directory (default: edgec-out)")
    b.add_argument("--factory", help="build an eager nn.Module from code: package.module:function")
    b.add_argument("--route", help="force a route, e.g. onnx,tflite or torch,onnx,saved_model,tflite")
    b.add_argument("--variants", help="comma-separated variants (default: the target's): fp32,fp16,dynamic_int8")
    b.add_argument("--input-shape", action="append", default=[], metavar="NAME=1x3x224x224[:dtype]",
                   help="static shape (and dtype) of an input; repeat per input")
    b.add_argument("--input-value", action="append", default=[], metavar="NAME=VALUE",
                   help="fix a configuration input of an ONNX model to a constant (e.g. sr=16000): it leaves the "
                        "model's inputs and If nodes on it fold to their taken branch; repeat per input")
    b.add_argument("--keep-layout", action="store_true", help="keep NCHW inputs (default: image inputs -> NHWC)")
    b.add_argument("--trust-pickle", action="store_true", help="allow loading a pickled nn.Module (runs code!)")
    b.add_argument("--exporter", choices=["auto", "dynamo", "legacy"], help="torch.onnx exporter")
    b.add_argument("--opset", type=int, help="ONNX opset for torch export")
    b.add_argument("--cache-dir", help="step cache: a directory or an fsspec URL such as s3://bucket/prefix "
                   "(default: ~/.cache/edgec)")
    b.add_argument("--no-cache", action="store_true", help="do not read or write the step cache")
    b.add_argument("--parity", choices=["fail", "warn"], help="on a parity budget miss: fail (exit 8) or warn")
    b.add_argument("--config", help="a saved config (JSON/YAML, or a build's manifest.json) to replay")
    b.add_argument("--dry-run", action="store_true", help="print the resolved config and route, build nothing")
    b.add_argument("--json", action="store_true", help="print the manifest as JSON")
    b.add_argument("--quiet", "-q", action="store_true", help="no progress display")
    b.add_argument("--no-bench", action="store_true", help="do not measure the variants (by default each is "
                   "benchmarked once per artifact and machine; a warm rebuild reuses that measurement)")
    b.add_argument("--compare-routes", action="store_true", help="build every feasible route (each converter "
                   "family), compare parity, speed here, size, ops and delegate coverage, and keep the fastest "
                   "within the target's fp32 parity budget")
    from edgec.cli.parity_cmd import add_build_arguments

    add_build_arguments(b)  # calibration, validation, budgets, image preprocessing
    from edgec.cli.bundle_cmd import add_build_arguments as add_bundle_arguments

    add_bundle_arguments(b)  # --labels, --name, ..., --bundle/--no-bundle
    from edgec.cli.device_args import add_device_arguments

    add_device_arguments(b, build=True)  # --device ssh://... | adb://..., --parity-on-device


def _build_config(args):
    from edgec.pipeline.config import BuildConfig, load_config_file, parse_shape, parse_value, split_dtype

    base = load_config_file(args.config) if args.config else {}
    shapes, dtypes = {}, {}
    for s in args.input_shape:
        spec, dtype = split_dtype(s)
        name, shape = parse_shape(spec)
        shapes[name] = shape
        if dtype:
            dtypes[name] = dtype
    flags = {
        "model": args.model, "target": args.target, "out": args.out, "factory": args.factory,
        "route": tuple(x for x in args.route.split(",") if x) if args.route else None,
        "variants": tuple(x for x in args.variants.split(",") if x) if args.variants else None,
        "input_shapes": shapes or None, "input_dtypes": dtypes or None,
        "input_values": dict(parse_value(v) for v in args.input_value) or None,
        "keep_layout": args.keep_layout or None, "trust_pickle": args.trust_pickle or None,
        "exporter": args.exporter, "opset": args.opset, "cache_dir": args.cache_dir,
        "use_cache": False if args.no_cache else None, "parity": args.parity,
        "bench": False if getattr(args, "no_bench", False) else None,
        "compare_routes": True if getattr(args, "compare_routes", False) else None,
    }
    from edgec.cli.device_args import device_spec

    flags["device"] = device_spec(args, build=True)  # --device, --parity-on-device (None without them)
    from edgec.cli.parity_cmd import build_flags

    flags.update(build_flags(args, base))
    from edgec.cli.bundle_cmd import build_flags as bundle_flags

    flags.update(bundle_flags(args, base))
    merged = dict(base)
    merged.update({k: v for k, v in flags.items() if v is not None})  # CLI > config file > defaults
    return BuildConfig.from_dict(merged, where=args.config or "flags")


def _cmd_build(args) -> int:
    from edgec.pipeline.progress import Progress

    cfg = _build_config(args)
    if args.dry_run:
        from edgec.formats import Format, detect_format
        from edgec.convert.planner import paths, plan
        from edgec.targets import load_target

        load_target(cfg.target)
        src = detect_format(cfg.model) if cfg.model else Format.TORCH_MODULE
        route = plan(src, Format.TFLITE, cfg.route)
        candidates = [[c.name for c in route]] if cfg.route else [[c.name for c in p] for p in paths(src, Format.TFLITE)]
        print(json.dumps({"config": cfg.to_dict(), "route": [c.name for c in route],
                          "route_candidates": candidates}, indent=2))
        return 0
    from edgec import build
    from edgec.errors import ParityError

    try:
        result = build(cfg, Progress(enabled=not (args.quiet or args.json)))
    except ParityError as exc:  # the build and its ledger were written: show them, then fail
        if getattr(exc, "result", None) is not None:
            _print_build(exc.result, args)
        raise
    _print_build(result, args)
    return 0


def _print_build(result, args) -> None:
    if args.json:
        print(json.dumps(result.manifest, indent=2, default=str))
    else:
        from edgec.report.summary import render_summary

        print(render_summary(result.manifest, result.out))


def _cmd_inspect(args) -> int:
    from edgec.report.inspect import inspect_model, render_text

    info = inspect_model(args.model, trust_pickle=args.trust_pickle)
    print(json.dumps(info, indent=2, default=str) if args.json else render_text(info))
    return 0


def _cmd_targets(args) -> int:
    from edgec.targets import list_targets, load_target

    if args.action == "show":
        if not args.name:
            from edgec.errors import UsageError

            raise UsageError("`edgec targets show` needs a NAME or a profile FILE")
        from edgec.cli.bench_cmd import resolved_settings

        target = load_target(args.name)
        prof = target.to_dict()
        prof["resolved"] = resolved_settings(target, args)  # CLI > config file > profile > default
        if args.json:
            print(json.dumps(prof, indent=2))
        else:
            import yaml

            print(yaml.safe_dump(prof, sort_keys=False).rstrip())
        return 0
    rows = list_targets()
    if args.json:
        print(json.dumps(rows, indent=2))
        return 0
    for r in rows:
        if "alias_of" in r:
            print(f"{r['name']:<18} alias of {r['alias_of']}")
        else:
            print(f"{r['name']:<18} {r['runtime']}/{r['delegate']:<8} {','.join(r['variants']):<24} "
                  f"{r['description']}")
    return 0


def _cmd_report(args) -> int:
    from edgec.errors import UsageError
    from edgec.report import write_comparison, write_reports

    if len(args.builds) > 2:
        raise UsageError("`edgec report` takes one build directory, or two to compare")
    if len(args.builds) == 1:
        paths = write_reports(args.builds[0])
    else:
        paths = write_comparison(args.builds[0], args.builds[1], args.out or args.builds[1])
    if args.tensorboard:
        from edgec.report.tensorboard import export_tensorboard

        paths.append(export_tensorboard(args.builds, args.tensorboard))
    for p in paths:
        print(p)
    return 0


def _cmd_demo(args) -> int:
    from edgec.pipeline.demo import run_demo

    print(run_demo(args.out, args.target, args.cache_dir))
    return 0


def main(argv: list[str] | None = None) -> int:
    parser = _parser()
    args = parser.parse_args(argv)
    if args.version:
        from edgec.environment import __version__

        print(f"edgec {__version__}")
        return 0
    if not args.command:
        parser.print_help()
        return 2
    from edgec import logs

    # Before any framework loads: --debug shows the frameworks' own log lines (here and in the
    # children edgec starts); otherwise they are told to keep quiet (see edgec.logs).
    logs.set_debug(args.debug)
    logs.quiet_env()
    handler = {"build": _cmd_build, "inspect": _cmd_inspect, "targets": _cmd_targets, "report": _cmd_report,
               "demo": _cmd_demo}
    if args.command in ("bench", "estimate"):
        from edgec.cli.bench_cmd import cmd_bench, cmd_estimate

        handler.update(bench=cmd_bench, estimate=cmd_estimate)
    if args.command == "bundle":
        from edgec.cli.bundle_cmd import cmd_bundle

        handler["bundle"] = cmd_bundle
    if args.command == "parity":
        from edgec.cli.parity_cmd import cmd_parity

        handler["parity"] = cmd_parity
    if args.command == "doctor":
        from edgec.cli.doctor_cmd import cmd_doctor

        handler["doctor"] = cmd_doctor
    if args.command in ("matrix", "cache"):
        from edgec.cli.matrix_cmd import cmd_cache, cmd_matrix

        handler.update(matrix=cmd_matrix, cache=cmd_cache)
    if args.command == "serve":
        from edgec.cli.serve_cmd import cmd_serve

        handler["serve"] = cmd_serve
    try:
        code = handler[args.command](args)
    except EdgecError as exc:
        if args.debug:
            import traceback

            traceback.print_exc()
        print(f"edgec: {exc.kind} error: {exc.one_line()}", file=sys.stderr)
        code = exc.exit_code
    except KeyboardInterrupt:
        print("edgec: interrupted", file=sys.stderr)
        code = 130
    except Exception as exc:  # a bug: say so in one line unless --debug
        if args.debug:
            raise
        print(f"edgec: internal error: {type(exc).__name__}: {str(exc).splitlines()[0] if str(exc) else ''} "
              "(rerun with --debug for the traceback)", file=sys.stderr)
        code = 1
    return code


def entry() -> None:  # pragma: no cover
    sys.exit(main())


if __name__ == "__main__":  # pragma: no cover
    sys.exit(main())
