"""``edgec build``: plan a route through the graph, run each step through the cache, check parity,
measure, bundle, write the manifest.

The build's steps live in their own modules and read one typed ``BuildContext``
(``edgec.pipeline.context``): the source and conversion steps (``steps``), the route search
(``search``), the parity ledger (``edgec.validate.ledger`` via ``parity``), the bench step
(``bench_step``), the bundle (``edgec.bundle``), the manifest (``manifest``) and publishing
(``publish``). Nothing is written into the output directory until the whole build has succeeded.
"""

from __future__ import annotations

from pathlib import Path

from edgec.errors import NoRouteError, ParityError, UnsupportedModelError, UsageError
from edgec.formats import Artifact, Format, TensorSpec
from edgec.pipeline.config import BuildConfig
from edgec.pipeline.context import BuildContext, BuildResult
from edgec.pipeline.manifest import build_manifest, load_manifest  # noqa: F401  (load_manifest: re-exported)
from edgec.pipeline.progress import Progress
from edgec.pipeline.publish import check_writable, publish
from edgec.pipeline.steps import build_variants, loadable, outputs_from, probe, refined, source
from edgec.targets import TargetProfile, load_target

BUILDABLE_VARIANTS = ("fp32", "fp16", "dynamic_int8", "int8", "int16x8")


def build(cfg: BuildConfig, progress: Progress | None = None) -> BuildResult:
    progress = progress or Progress(enabled=False)
    target = load_target(cfg.target)
    variants, left_out = _variants(cfg, target)
    out = Path(cfg.out)
    check_writable(out)
    from edgec.pipeline.cache import open_cache

    cache = open_cache(cfg.cache_dir, enabled=cfg.use_cache)  # a directory or an fsspec URL (s3://...)
    from edgec.runtime import isolated

    try:
        ctx = BuildContext.for_config(cfg, target, variants, out, cache, progress)
        ctx.left_out = left_out
        return run(ctx)
    finally:
        isolated.release()
        cache.close()


def _variants(cfg: BuildConfig, target: TargetProfile) -> tuple[tuple[str, ...], list[dict]]:
    """The variants to build (fp32 first) and the profile's defaults left out, with why
    (``edgec.targets.defaults``: no calibration data, or the target's runtime cannot load it)."""
    from edgec.targets.defaults import choose_variants

    return choose_variants(target, tuple(cfg.variants) if cfg.variants else None,
                           has_calibration=bool(cfg.calibration_data or cfg.synthetic_calibration))


def run(ctx: BuildContext) -> BuildResult:
    cfg = ctx.cfg
    src = source(ctx)
    if cfg.input_values and src.format is not Format.ONNX:
        raise UsageError(f"--input-value fixes inputs of an ONNX model; this source is {src.format.value}",
                         where=str(src.path), hint="for PyTorch, bake the value into the module (or export "
                         "ONNX with it as an input and pass the .onnx)")
    info = probe(ctx, src)
    inputs = [TensorSpec.from_dict(d) for d in info["inputs"]]
    ctx.source_input_order = [s.name for s in inputs]
    inputs, ctx.constants = _constant_inputs(ctx, inputs)
    if not inputs and src.format is not Format.TFLITE:
        raise UnsupportedModelError("the model has no inputs left to feed: its outputs are constants, so "
                                    "there is nothing to run on a device", where=str(src.path),
                                    hint="export the model with its real inputs (or fix fewer with --input-value)")
    from edgec.bundle import precheck

    precheck(cfg, ctx.target, inputs)  # bundle settings the inputs already refuse
    from edgec.convert.planner import plan
    from edgec.data.calibration import resolve

    forced = plan(src.format, Format.TFLITE, cfg.route) if cfg.route else []
    ctx.data = resolve(cfg, ctx.variants, inputs, src.format, forced)  # before any conversion
    _prewarm(ctx, src)
    outputs = [TensorSpec.from_dict(d) for d in info.get("outputs", [])]
    if src.format is Format.TFLITE:
        cand, chain, fp32 = None, [src], None
        route_search = {"chosen": [src.format.value], "converters": [], "options": {}, "attempts": [],
                        "reason": "the source is already TFLite: there is nothing to convert"}
    else:
        from edgec.pipeline.search import search

        cand, chain, fp32, route_search = search(ctx, src, inputs, outputs or None)
    route = list(cand.converters) if cand else []
    extra = cand.settings if cand else {}
    tflites, skipped = build_variants(ctx, route, chain[-1], inputs, src, fp32, extra)
    tflites, skipped = loadable(ctx, tflites, ctx.left_out + skipped)
    outputs = refined(outputs or outputs_from(chain + tflites), ctx.static_outputs.get("outputs", {}))
    from edgec.pipeline.parity import run_parity

    parity = run_parity(ctx, src, chain[1:], tflites, inputs, outputs)
    manifest = build_manifest(ctx, src, route, chain, tflites, skipped, inputs, outputs, parity)
    manifest["route_search"] = route_search
    extra_routes = None
    if ctx.compared_routes:  # --compare-routes: the other passing routes' files
        from edgec.pipeline.route_compare import finish

        extra_routes = finish(ctx, route_search, src, inputs, outputs, fp32)
    if getattr(cfg, "bench", True):  # measured once per artifact and machine, then cached
        from edgec.pipeline.bench_step import bench_variants

        manifest["bench"] = bench_variants(ctx, chain, tflites)
    from edgec.bundle import for_build

    bundle = for_build(ctx, manifest, tflites)
    publish(ctx.out, chain[1:] + tflites, manifest, bundle if extra_routes is None else extra_routes(bundle))
    if not parity["ok"] and cfg.parity == "fail":
        failed = ", ".join(f"{s['stage']}" for s in parity["stages"] if not s["ok"])
        found = f" ({parity['finding']})" if parity.get("finding") else ""
        tried = "" if len(route_search["attempts"]) < 2 else \
            f"; routes tried: {NoRouteError.listing(route_search['attempts'])}"
        err = ParityError(f"parity budget missed by {failed}{found}{tried}; build written to {ctx.out} "
                          "with the ledger in manifest.json", where=str(ctx.out / "manifest.json"),
                          hint="inspect the ledger; --parity warn writes the build without failing")
        err.result = BuildResult(ctx.out, manifest, ctx.steps)  # the CLI still prints the ledger
        raise err
    return BuildResult(ctx.out, manifest, ctx.steps)


def _prewarm(ctx: BuildContext, src: Artifact) -> None:
    """Start the ledger's framework children now, so their imports overlap the conversion."""
    if src.format is Format.TFLITE or ctx.data.validation is None:
        return
    from edgec.runtime import isolated

    families = {"tensorflow": "tensorflow"}
    if src.format not in (Format.SAVED_MODEL, Format.KERAS):  # the source runs in torch or onnxruntime
        families["torch/onnxruntime"] = "onnxruntime" if src.format is Format.ONNX else "torch/onnxruntime"
    isolated.prewarm(families)


def _constant_inputs(ctx: BuildContext, inputs: list[TensorSpec]):
    """Split off the inputs ``--input-value`` fixes: (the model's remaining inputs, {name: array})."""
    if not ctx.cfg.input_values:
        return inputs, {}
    from edgec.passes.canonicalize import parse_input_value

    consts = dict(parse_input_value(f"{k}={v}", inputs) for k, v in ctx.cfg.input_values.items())
    return [s for s in inputs if s.name not in consts], consts
