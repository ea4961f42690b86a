"""The data and parity flags of ``edgec build``, and ``edgec parity A B``: flags -> config -> the same
API a Python user calls (``edgec.compare_models``). Light at import time."""

from __future__ import annotations

import argparse
import json

DATA_HELP = "an image folder, a .npy/.npz file (arrays keyed by input name), or package.module:function"


def add_preprocess_arguments(p) -> None:
    p.add_argument("--image-resize", type=int, metavar="N", help="resize images' shorter side to N, then "
                   "center-crop to the input size (ImageNet evaluation: 256 for 224; default: the largest "
                   "centered crop, resized)")
    p.add_argument("--mean", metavar="M[,M,M]", help="per-channel mean on [0,1] pixels (default: ImageNet's "
                   "for 3 channels)")
    p.add_argument("--std", metavar="S[,S,S]", help="per-channel std on [0,1] pixels (default: ImageNet's)")
    p.add_argument("--channel-order", choices=["rgb", "bgr"], help="channel order of image inputs (default rgb)")
    p.add_argument("--image-layout", choices=["nchw", "nhwc"], help="layout of image inputs (default: from the "
                   "input's shape)")


def add_build_arguments(b) -> None:
    """Calibration, validation and budget flags of ``edgec build``."""
    b.add_argument("--calibration-data", metavar="PATH", help=f"int8/int16x8 calibration samples: {DATA_HELP}")
    b.add_argument("--calibration-samples", type=int, metavar="N", help="calibration samples to use (default 100)")
    b.add_argument("--synthetic-calibration", action="store_true", help="calibrate on random data when no "
                   "--calibration-data is given (warned about and marked in the manifest)")
    b.add_argument("--validation-data", metavar="PATH", help=f"parity ledger inputs: {DATA_HELP}; kept apart "
                   "from the calibration samples (the same path for both is split)")
    b.add_argument("--validation-samples", type=int, metavar="N", help="validation samples to use "
                   "(default: all, up to 500; 8 synthetic)")
    b.add_argument("--synthetic-validation", action="store_true", help="validate on random inputs when no "
                   "--validation-data is given (the ledger says 'synthetic')")
    b.add_argument("--quant-io", choices=["float", "int8", "uint8"], help="input/output type of the int8 "
                   "variant (default float)")
    b.add_argument("--budget", action="append", default=[], metavar="VARIANT.KEY=N",
                   help="override a parity budget, e.g. int8.top1=0.9 or fp32.atol=1e-5 (repeatable)")
    add_preprocess_arguments(b)


def _preprocess_flags(args) -> dict:
    from edgec.pipeline.config import parse_floats

    return {"image_resize": args.image_resize, "mean": parse_floats(args.mean, "mean") if args.mean else None,
            "std": parse_floats(args.std, "std") if args.std else None, "channel_order": args.channel_order,
            "image_layout": args.image_layout}


def build_flags(args, base: dict) -> dict:
    """The BuildConfig fields these flags set (None: not given); budgets merge over the config file's."""
    from edgec.pipeline.config import parse_budget

    budgets = {k: dict(v) for k, v in (base.get("parity_budgets") or {}).items()}
    for text in args.budget:
        variant, key, value = parse_budget(text)
        budgets.setdefault(variant, {})[key] = value
    return {"calibration_data": args.calibration_data, "calibration_samples": args.calibration_samples,
            "synthetic_calibration": args.synthetic_calibration or None, "validation_data": args.validation_data,
            "validation_samples": args.validation_samples, "synthetic_validation": args.synthetic_validation or None,
            "quant_io": args.quant_io, "parity_budgets": budgets or None, **_preprocess_flags(args)}


def add_parsers(sub, common, epilog: str) -> None:
    p = sub.add_parser("parity", parents=[common], epilog=epilog, formatter_class=argparse.RawDescriptionHelpFormatter,
                       help="compare two models on the same inputs and name the first divergent layer")
    p.add_argument("a", metavar="A", help="the reference: .tflite, .onnx, .pt/.pt2 (TorchScript/ExportedProgram)")
    p.add_argument("b", metavar="B", help="the model under test (a .tflite for the layer walk)")
    p.add_argument("--data", metavar="PATH", help=f"inputs: {DATA_HELP}")
    p.add_argument("--synthetic", action="store_true", help="random inputs instead of --data (said in the report)")
    p.add_argument("--samples", type=int, default=8, metavar="N", help="samples compared layer by layer (default 8)")
    p.add_argument("--budget", action="append", default=[], metavar="KEY=N",
                   help="layer/output limit, e.g. cosine=0.999 or snr_db=30 (default: by B's type)")
    p.add_argument("--top", type=int, default=5, metavar="N", help="worst layers to list (default 5)")
    p.add_argument("--input-shape", action="append", default=[], metavar="NAME=1x3x224x224",
                   help="static shape of an input of A (TorchScript without recorded shapes)")
    p.add_argument("--json", action="store_true", help="print the report as JSON")
    add_preprocess_arguments(p)


def cmd_parity(args) -> int:
    import sys

    from edgec.pipeline.config import parse_shape
    from edgec.errors import UsageError
    from edgec.pipeline.pairwise import compare_models, render

    budget = {}
    for text in args.budget:
        key, sep, value = text.partition("=")
        if not sep:
            raise UsageError(f"--budget '{text}' is not KEY=NUMBER", hint="e.g. --budget cosine=0.999")
        try:
            budget[key] = float(value)
        except ValueError:
            raise UsageError(f"--budget '{text}': {value!r} is not a number") from None
    shapes = dict(parse_shape(s) for s in args.input_shape)
    report = compare_models(args.a, args.b, data=args.data, synthetic=args.synthetic, samples=args.samples,
                            budget=budget or None, top=args.top, input_shapes=shapes, **_preprocess_flags(args))
    print(json.dumps(report, indent=2, default=float) if args.json else render(report))
    if not report["ok"]:
        print(f"edgec: parity error: {report['verdict']}", file=sys.stderr)
        return 8
    return 0
