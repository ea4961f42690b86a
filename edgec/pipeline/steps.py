"""The build's steps: the source, its probe, and each conversion step, run through the cache.

A step is keyed by its input's sha256, the settings its converter uses, the tools' versions and the
code that shapes its output (``edgec.pipeline.cache.step_key``). A deterministic failure is cached
too, so a rebuild reports it again instead of re-running the converter.
"""

from __future__ import annotations

import json
import time
from pathlib import Path

from edgec.convert import Converter, StepContext
from edgec.environment import tool_versions
from edgec.errors import ConversionError, EdgecError, OutputError, UnsupportedModelError, UnsupportedOpsError
from edgec.formats import Artifact, Format, TensorSpec, detect_format, digest
from edgec.pipeline.cache import Cache, step_key
from edgec.pipeline.context import BuildContext
from edgec.pipeline.manifest import write_json

CONVERSION_CODE = ("convert", "passes", "formats")  # the packages whose code shapes a conversion step's output


def converter_tools(conv: Converter) -> dict[str, str]:
    """The versions that key a converter's steps: of edgec's venv, or of the converter's own environment."""
    if conv.env:
        from edgec.convert import envs

        return envs.versions(envs.get(conv.env), conv.tools)
    return tool_versions(conv.tools)


def source(ctx: BuildContext) -> Artifact:
    cfg = ctx.cfg
    if cfg.factory:
        from edgec.pipeline.sources import materialize_factory

        return materialize_factory(cfg.factory, ctx.cache)
    path = Path(cfg.model)
    fmt = detect_format(path)
    if fmt is Format.TORCH_MODULE and not cfg.trust_pickle:
        from edgec.runtime.loaders import load_torch

        load_torch(path, fmt, trust_pickle=False)  # raises the refusal with its hint
    return Artifact(path, fmt, meta={"sha256": digest(path)})


def probe(ctx: BuildContext, src: Artifact) -> dict:
    from edgec.pipeline.sources import probe as _probe

    key = step_key("probe", src.meta["sha256"], {"shapes": ctx.settings["input_shapes"],
                                                  "dtypes": ctx.settings["input_dtypes"],
                                                  "format": src.format.value}, tool_versions(("torch",)),
                   code=("runtime", "formats"))
    entry = ctx.cache.get(key)
    if entry is None:
        with ctx.progress.step(f"reading {src.format.value} inputs"):
            entry = ctx.cache.put(key, lambda p: write_json(p, _probe(src, ctx.cfg)))
    return json.loads(entry.output.read_text())


def run_step(ctx: BuildContext, conv: Converter, inp: Artifact, inputs: list[TensorSpec], extra: dict | None = None,
             label: str = "", resources: dict | None = None) -> Artifact:
    """One conversion step through the cache; its record goes to ``ctx.steps``."""
    settings = dict(ctx.settings, **(extra or {}))
    used = {k: settings.get(k) for k in conv.uses}
    tools = converter_tools(conv)
    in_sha = inp.meta.get("sha256") or digest(inp.path)
    key = step_key(conv.name, in_sha, used, tools, code=CONVERSION_CODE)
    t0 = time.perf_counter()
    entry = ctx.cache.get(key)
    cached = entry is not None
    title = f"{conv.src.value} -> {conv.dst.value}{label} ({conv.name})"
    if entry is None:
        raise_cached_failure(ctx.cache, key, title, ctx.progress)

        def produce(out_path: Path) -> dict:
            sctx = StepContext(inp.path, out_path, inputs, used, resources=resources or {})
            t = time.perf_counter()
            meta = conv.run(sctx)
            return {"step": conv.name, "meta": meta, "seconds": round(time.perf_counter() - t, 3),
                    "input_sha256": in_sha}

        try:
            with ctx.progress.step(title):
                entry = ctx.cache.put(key, produce)
            cached = entry.reused  # a concurrent build (edgec matrix) produced it while this one waited
        except (ConversionError, UnsupportedModelError) as exc:
            cache_failure(ctx.cache, key, exc, round(time.perf_counter() - t0, 3))
            raise
    else:
        ctx.progress.done(title, cached=True)
    meta = entry.meta.get("meta", {})
    ctx.steps.append({"name": conv.name, "from": conv.src.value, "to": conv.dst.value,
                      "variant": settings.get("variant") if "variant" in conv.uses else None,
                      "input_sha256": in_sha, "output_sha256": entry.meta["output_sha256"],
                      "tools": tools, "settings": used, "cache_key": key, "cached": cached,
                      "seconds": entry.meta.get("seconds") if not cached else round(time.perf_counter() - t0, 3),
                      "build_seconds": entry.meta.get("seconds"),
                      **{k: v for k, v in meta.items() if k not in ("io", "outputs")}})
    return Artifact(entry.output, conv.dst, settings.get("variant") if "variant" in conv.uses else None,
                    meta={"sha256": entry.meta["output_sha256"], "io": meta.get("io"),
                          "outputs": meta.get("outputs")})


def canonical(ctx: BuildContext, conv: Converter, chain: list[Artifact], inputs: list[TensorSpec]) -> None:
    """Before onnx2tf reads an ONNX: the canonicalization pass (fixed shapes, constant inputs,
    simplification, If folding). The canonical ONNX takes the exported one's place in the chain;
    the ledger still compares every stage with the original source."""
    from edgec.convert.routes import ONNX2TF_CONVERTERS

    last = chain[-1]
    if conv.name not in ONNX2TF_CONVERTERS or last.format is not Format.ONNX or last.meta.get("canonical"):
        return
    from edgec.passes.canonicalize import build_step

    extra = {"canonical_shapes": {s.name: list(s.shape) for s in inputs},
             "input_values": dict(ctx.cfg.input_values) or None}
    art = run_step(ctx, build_step(), last, inputs, extra, label=" canonicalize")
    art.meta["canonical"] = True
    if ctx.static_outputs.get("sha256") != art.meta["sha256"]:  # every attempt reuses one canonical ONNX
        ctx.static_outputs = {"sha256": art.meta["sha256"], "outputs": _static_outputs(art)}
    art.meta["outputs"] = art.meta.get("outputs") or last.meta.get("outputs")
    if len(chain) > 1:
        chain[-1] = art       # the exported ONNX stays in the steps; the canonical one is the stage
    else:
        chain.append(art)     # an ONNX source stays the reference


def build_variants(ctx: BuildContext, route, last: Artifact, inputs, src, fp32, extra: dict
                   ) -> tuple[list[Artifact], list[dict]]:
    """Every requested variant of the chosen route's last step (fp32 is already built)."""
    skipped = []
    if not route:
        art = Artifact(src.path, Format.TFLITE, "fp32", meta={"sha256": src.meta["sha256"]})
        skipped = [{"variant": v, "reason": "the source is already TFLite; no conversion was run"}
                   for v in ctx.variants if v != "fp32"]
        return [art], skipped
    from edgec.passes.quantize import needs_calibration

    final = route[-1]
    arts = [fp32]
    try:
        for v in ctx.variants:
            if v == "fp32":
                continue
            if needs_calibration(v) and final.name != "tf_to_tflite" and not final.calibrates:
                skipped.append({"variant": v, "reason": f"the chosen route ends with {final.name}, which "
                                "does not calibrate; full-integer variants are made by TFLiteConverter from "
                                "a SavedModel"})
                continue
            step_extra, resources = {**extra, "variant": v}, None
            if needs_calibration(v):  # int8, int16x8: calibrated on the build's calibration data
                step_extra["quantization"], resources = ctx.data.quantization(v, ctx.cfg.quant_io, last, inputs)
            arts.append(run_step(ctx, final, last, inputs, step_extra, label=f" [{v}]", resources=resources))
    finally:
        ctx.data.close()
    return arts, skipped


def loadable(ctx: BuildContext, tflites: list[Artifact], skipped: list[dict]) -> tuple[list[Artifact], list[dict]]:
    """A default variant the target's runtime cannot load is not shipped (op codes and versions of the
    built file against the profile's runtime); explicit ``--variants`` are kept as asked."""
    if ctx.cfg.variants:
        return tflites, skipped
    from edgec.targets.defaults import unloadable

    bad = unloadable(ctx.target, {a.variant: a.path for a in tflites})
    drop = {b["variant"] for b in bad}
    return [a for a in tflites if a.variant not in drop], skipped + bad


def outputs_from(chain: list[Artifact]) -> list[TensorSpec]:
    """Output specs of a source that does not state them (torch): from the exported ONNX."""
    for a in chain:
        if a.meta.get("outputs"):
            return [TensorSpec.from_dict(d) for d in a.meta["outputs"]]
    return []


def refined(outputs: list[TensorSpec], static: dict) -> list[TensorSpec]:
    """Source outputs with dynamic dims take the static shape the canonical ONNX inferred (same
    name, same rank), so the runners can tell a layout change from a wrong shape."""
    out = []
    for o in outputs:
        s = static.get(o.name)
        fits = s is not None and len(s.shape) == len(o.shape) and all(a is None or a == b for a, b in zip(o.shape, s.shape))
        out.append(TensorSpec(o.name, s.shape, o.dtype) if fits and not o.is_static else o)
    return out


def _static_outputs(art: Artifact) -> dict:
    from edgec.runtime.loaders import load_onnx, onnx_io

    return {o.name: o for o in onnx_io(load_onnx(art.path))[1] if o.is_static}


# -- failures, cached -------------------------------------------------------------------------------

def _failure_key(key: str) -> str:
    return "failed-" + key


def cache_failure(cache: Cache, key: str, exc: EdgecError, seconds: float) -> None:
    """Remember a deterministic failure (same input bytes, settings, tool and edgec versions), so a
    rebuild reports it again instead of re-running the converter."""
    record = {"class": type(exc).__name__, "what": exc.what, "where": exc.where, "hint": exc.hint,
              "advice": list(getattr(exc, "advice", None) or []), "seconds": seconds}
    if isinstance(exc, UnsupportedOpsError):
        record["stage"], record["ops"] = exc.stage, exc.ops

    def produce(path: Path) -> dict:
        path.write_text(json.dumps(record))
        return {"failure": True}

    try:
        cache.put(_failure_key(key), produce)
    except OutputError:
        pass  # not remembering a failure only costs a retry


def raise_cached_failure(cache: Cache, key: str, title: str, progress) -> None:
    entry = cache.get(_failure_key(key))
    if entry is None:
        return
    from edgec import errors

    rec = json.loads(entry.output.read_text())
    if rec.get("class") == "UnsupportedOpsError":
        exc = UnsupportedOpsError(rec["stage"], rec["ops"], where=rec.get("where"), hint=rec.get("hint"))
    else:
        cls = getattr(errors, rec.get("class", ""), ConversionError)
        cls = cls if isinstance(cls, type) and issubclass(cls, EdgecError) else ConversionError
        exc = cls(rec["what"], where=rec.get("where"), hint=rec.get("hint"))
    exc.advice, exc.cached = rec.get("advice", []), True
    progress.done(f"{title}: failed before with the same inputs and tools", cached=True)
    raise exc
