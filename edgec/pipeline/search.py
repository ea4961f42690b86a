"""The route search: candidate routes tried in order until one gives a fp32 TFLite within the fp32
parity budget (``edgec.convert.routes`` orders the candidates; this module runs them).

Every attempt is recorded (route, converters, options, ok, reason, seconds); a route that converts
but misses parity counts as failed with its parity numbers as the reason. A forced ``--route`` is
the only attempt. With ``--compare-routes`` every passing route is kept and one is chosen by the
rule in ``edgec.pipeline.route_compare``.
"""

from __future__ import annotations

import time

from edgec.errors import ConversionError, DependencyError, EdgecError, NoRouteError, UnsupportedModelError
from edgec.formats import Artifact, Format, TensorSpec
from edgec.pipeline.context import BuildContext
from edgec.pipeline.steps import canonical, outputs_from, refined, run_step


def search(ctx: BuildContext, src: Artifact, inputs: list[TensorSpec], outputs: list[TensorSpec] | None):
    """Returns (the candidate, its chain, its fp32 TFLite, the ``route_search`` record)."""
    from edgec.convert.planner import paths, plan
    from edgec.convert.routes import Search

    cfg = ctx.cfg
    if cfg.route:
        cands = Search.forced(src.format, plan(src.format, Format.TFLITE, cfg.route), inputs)
    else:
        cands = Search.for_source(src.format, paths(src.format, Format.TFLITE), inputs,
                                  keep_layout=cfg.keep_layout, exporter=cfg.exporter)
    attempts, errors, fallback, passed = [], [], None, []
    ctx.not_feasible = cands.not_feasible
    compare = bool(getattr(cfg, "compare_routes", False)) and not cfg.route
    while (cand := cands.next()) is not None:
        n_steps = len(ctx.steps)
        rec, chain, fp32, error = attempt(ctx, cand, src, inputs, outputs)
        attempts.append(rec)
        errors.append(error)
        if cfg.route and error is not None:
            raise error  # a forced route fails as its step failed
        if rec["ok"] and compare:  # --compare-routes: keep it and try the other routes too
            passed.append((cand, chain, fp32, ctx.steps[n_steps:], rec))
            del ctx.steps[n_steps:]
            cands.passed(cand)
            continue
        if rec["ok"] or cfg.route:
            chosen = "forced with --route" if cfg.route else \
                f"{cand.why}: {rec['reason']}" if len(attempts) == 1 else \
                f"attempt {len(attempts)} ({cand.why}) is the first within the fp32 parity budget: {rec['reason']}"
            return cand, chain, fp32, route_record(ctx, cand, chosen, attempts)
        if error is None and fallback is None and rec["parity"].get("ran", True):
            fallback = (cand, chain, fp32, ctx.steps[n_steps:])  # converted and runs, but misses
        del ctx.steps[n_steps:]  # a failed attempt's steps are in its record, not the build's
        cands.failed(cand, error, _graph_ops(chain), rec.get("parity"))
    if passed:
        from edgec.pipeline.route_compare import choose

        cand, chain, fp32, steps, reason = choose(ctx, passed, inputs, outputs)
        ctx.steps.extend(steps)
        return cand, chain, fp32, route_record(ctx, cand, reason, attempts)
    if fallback is None:
        unsupported = all(isinstance(e, UnsupportedModelError) for e in errors)
        raise NoRouteError(src.format.value, attempts, where=str(cfg.model or cfg.factory), unsupported=unsupported)
    cand, chain, fp32, steps = fallback
    ctx.steps.extend(steps)
    why = (f"no route was within the fp32 parity budget; kept {cand.label()}, the first that converted "
           f"(its ledger shows the miss)")
    return cand, chain, fp32, route_record(ctx, cand, why, attempts)


def attempt(ctx: BuildContext, cand, src: Artifact, inputs: list[TensorSpec], outputs: list[TensorSpec] | None):
    """Convert along one candidate to a fp32 TFLite and check it; (record, chain, fp32, error)."""
    n_steps, t0 = len(ctx.steps), time.perf_counter()
    rec = {"route": cand.formats(), "converter": [c.name for c in cand.converters],
           "options": cand.describe_options(), "why": cand.why}
    chain, fp32, error = [src], None, None
    try:
        for conv in cand.converters[:-1]:
            canonical(ctx, conv, chain, inputs)
            chain.append(run_step(ctx, conv, chain[-1], inputs, cand.settings))
        canonical(ctx, cand.converters[-1], chain, inputs)
        fp32 = run_step(ctx, cand.converters[-1], chain[-1], inputs, {**cand.settings, "variant": "fp32"},
                        label=" [fp32]")
    except (ConversionError, UnsupportedModelError, DependencyError) as exc:
        error = exc
    if error is None:
        ok, reason, rec["parity"] = check_fp32(ctx, src, chain, fp32, inputs, outputs)
        cached = all(st["cached"] for st in ctx.steps[n_steps:])
    else:
        ok, reason, cached = False, one_line(error), bool(getattr(error, "cached", False))
    rec.update(ok=ok, reason=reason, seconds=round(time.perf_counter() - t0, 3), cached=cached)
    return rec, chain, fp32, error


def route_record(ctx: BuildContext, cand, reason: str, attempts: list[dict]) -> dict:
    rec = {"chosen": cand.formats(), "converters": [c.name for c in cand.converters],
           "options": cand.describe_options(), "reason": reason, "attempts": attempts}
    if ctx.not_feasible:
        rec["not_feasible"] = ctx.not_feasible  # routes this source cannot take, and why (edgec.convert.routes)
    if getattr(ctx.cfg, "compare_routes", False) and not ctx.cfg.route:
        rec["compared"] = True
    return rec


def check_fp32(ctx: BuildContext, src, chain, fp32, inputs, outputs) -> tuple[bool, str, dict]:
    """The fp32 TFLite against the source on the validation data, with the fp32 budget."""
    from edgec.validate.ledger import run_ledger

    outputs = refined(outputs or outputs_from(chain + [fp32]), ctx.static_outputs.get("outputs", {}))
    ledger = run_ledger(ctx, src, chain[1:], [fp32], inputs, outputs, ctx.data.validation)
    st = next(s for s in ledger["stages"] if s["stage"] == "tflite:fp32")
    check = {"ok": st["ok"], "budget": st["budget"]}
    if st.get("error"):  # a TFLite that cannot run was not converted, whatever the converter said
        check["ran"] = False
        return False, f"converted, but the fp32 TFLite does not run: {st['error']}", check
    check["shape_mismatch"] = any("shape_mismatch" in r for r in st.get("outputs") or [])
    w = worst(st)
    check.update(w)
    if st["ok"]:
        return True, f"fp32 parity ok ({fmt_worst(w)})", check
    return False, f"converted, but missed the fp32 parity budget: {'; '.join(st['misses'][:2])}", check


def one_line(exc: Exception) -> str:
    text = exc.what if isinstance(exc, EdgecError) else str(exc)
    kind = type(exc).__name__
    return f"{kind}: {text}"[:400]


def _graph_ops(chain: list[Artifact]) -> set[str]:
    """Op types of the last ONNX in ``chain`` (what a failed onnx2tf attempt ran on)."""
    onnx_art = next((a for a in reversed(chain) if a.format is Format.ONNX), None)
    if onnx_art is None:
        return set()
    from edgec.runtime.loaders import load_onnx

    try:
        model = load_onnx(onnx_art.path)
    except EdgecError:
        return set()
    from edgec.convert._onnx2tf import _walk_nodes

    return {n.op_type for n, _ in _walk_nodes(model.graph)}


def worst(stage: dict) -> dict:
    rows = stage.get("outputs") or []
    if not rows:
        return {}
    out = {"max_abs": max(r.get("max_abs", 0.0) for r in rows)}
    cos = [r["cosine"] for r in rows if r.get("cosine") is not None]
    if cos:
        out["cosine"] = min(cos)
    return out


def fmt_worst(w: dict) -> str:
    parts = [f"max abs {w['max_abs']:.2g}"] if "max_abs" in w else []
    if "cosine" in w:
        parts.append(f"cosine {w['cosine']:.6f}")
    return ", ".join(parts) or "no outputs"
