"""The bundle flags of ``edgec build`` and ``edgec bundle OUT``: flags -> ``BundleOptions`` -> the same
API a Python user calls (``edgec.make_bundle``). Light at import time."""

from __future__ import annotations

import argparse
import json


def add_metadata_arguments(p) -> None:
    p.add_argument("--labels", metavar="FILE", help="class names, one per line, in class-index order (embedded "
                   "in every model; makes the bundle an image classifier when the input is an image)")
    p.add_argument("--name", help="model name in the metadata (default: the source file's name)")
    p.add_argument("--description", help="model description in the metadata")
    p.add_argument("--model-version", metavar="VERSION", help="model version in the metadata")
    p.add_argument("--author", help="author in the metadata")
    p.add_argument("--license", help="license in the metadata")
    p.add_argument("--task", choices=["auto", "image_classifier", "generic"],
                   help="metadata kind (default auto: image_classifier for one image input with labels or one "
                        "[1, N] output)")
    p.add_argument("--image-input", choices=["auto", "float32", "uint8"],
                   help="what bundle image inputs take (default auto: uint8 pixels for full-integer variants, "
                        "float pixels / 255 otherwise)")
    p.add_argument("--score-calibration", metavar="FILE", help="per-class 'scale,slope,offset[,min_score]' "
                   "lines (TFLite score calibration, embedded)")
    p.add_argument("--score-transformation", choices=["IDENTITY", "LOG", "INVERSE_LOGISTIC"])
    p.add_argument("--default-score", type=float, help="score for classes with an empty calibration line")


def add_build_arguments(b) -> None:
    """``edgec build``: the metadata flags, and whether to bundle (default: Android targets do)."""
    add_metadata_arguments(b)
    g = b.add_mutually_exclusive_group()
    g.add_argument("--bundle", dest="bundle", action="store_true", default=None,
                   help="write OUT/bundle/ and OUT/bundle.zip (default for Android targets)")
    g.add_argument("--no-bundle", dest="bundle", action="store_false", help="do not write the bundle")


def _abs(path: str | None) -> str | None:
    """Files are recorded absolute, so ``edgec bundle OUT`` finds them from any directory."""
    from pathlib import Path

    return str(Path(path).resolve()) if path else None


def _option_flags(args) -> dict:
    return {"labels": _abs(args.labels), "name": args.name, "description": args.description,
            "version": args.model_version, "author": args.author, "license": args.license, "task": args.task,
            "image_input": args.image_input, "score_calibration": _abs(args.score_calibration),
            "score_transformation": args.score_transformation, "default_score": args.default_score}


def build_flags(args, base: dict) -> dict:
    """``{"bundle": {...}}``: the config file's bundle settings with these flags over them."""
    merged = dict(base.get("bundle") or {})
    merged.update({k: v for k, v in _option_flags(args).items() if v is not None})
    if args.bundle is not None:
        merged["enabled"] = args.bundle
    return {"bundle": merged}


def add_parsers(sub, common, epilog: str) -> None:
    p = sub.add_parser("bundle", parents=[common], epilog=epilog, formatter_class=argparse.RawDescriptionHelpFormatter,
                       help="(re-)create OUT/bundle/ and OUT/bundle.zip from a finished build")
    p.add_argument("out", metavar="OUT", help="a build directory (with manifest.json)")
    p.add_argument("--variants", help="comma-separated variants to bundle (default: every TFLite variant built)")
    p.add_argument("--mean", metavar="M[,M,M]", help="per-channel mean on [0,1] pixels the source model expects "
                   "(default: the build's)")
    p.add_argument("--std", metavar="S[,S,S]", help="per-channel std on [0,1] pixels (default: the build's)")
    p.add_argument("--parity", choices=["fail", "warn"], default="fail",
                   help="when a bundle model differs from its build variant beyond budget: fail (exit 8) or warn")
    p.add_argument("--json", action="store_true", help="print the bundle's manifest as JSON")
    add_metadata_arguments(p)


def cmd_bundle(args) -> int:
    from edgec.bundle import BundleOptions, bundle
    from edgec.pipeline.config import parse_floats
    from edgec.formats.manifest import load_manifest

    base = (load_manifest(args.out).get("config") or {}).get("bundle") or {}
    flags = _option_flags(args)
    if args.variants:
        flags["variants"] = [v for v in args.variants.split(",") if v]
    opts = BundleOptions.from_dict({**base, **{k: v for k, v in flags.items() if v is not None}},
                                   where="flags")
    result = bundle(args.out, opts, mean=parse_floats(args.mean, "mean") if args.mean else None,
                    std=parse_floats(args.std, "std") if args.std else None, parity=args.parity)
    if args.json:
        print(json.dumps(result.manifest, indent=2, default=str))
        return 0
    bm = result.manifest
    print(f"{result.out}/ ({bm['task']}, {len(bm['files'])} files) and {result.out}.zip")
    for m in bm["models"]:
        ins = ", ".join(f"{r['name']} {r['dtype']}{r['shape']}" for r in m["inputs"])
        c = m["check"]["outputs"][0]
        print(f"  {m['file']:<28} {m['bytes']:>11,} bytes  in: {ins}  check vs build: "
              f"{'ok' if m['check']['ok'] else 'FAILED'} (cosine {c['cosine']:.6f})")
    return 0
