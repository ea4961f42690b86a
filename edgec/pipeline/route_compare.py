"""``edgec build --compare-routes``: build every feasible route, measure each, pick one by a stated rule.

The route search (``edgec.convert.routes``) runs every candidate instead of stopping at the first that
passes (option retries of a route that already passed are skipped). Each passing route's fp32
TFLite is then measured: parity vs the source (from its attempt), p50 on this machine (the build's
one timing loop, same threads for every route), size, op histogram, TRANSPOSE count and the
target's delegate coverage. ``pick`` applies the rule below; the winner becomes the build's route
and every other passing route still gets its variants (int8 calibrated on the same calibration
data) and a parity ledger, kept under ``routes/<n>-<converter>/`` in the output. ``cross_check``
runs the routes' fp32 TFLites on the same validation inputs and compares them with each other: two
independent converters that agree are strong evidence; where they disagree, the one closer to the
source is named.

Rule: among the routes within the fp32 parity budget (and within the target's ``size_mb`` budget,
where it has one), the lowest fp32 p50 measured here wins; a route within ``TIE`` of the fastest
counts as tied and the earlier route in search order (the cheaper one) keeps the win.
"""

from __future__ import annotations

import tempfile
from pathlib import Path

TIE = 0.03   # p50s within 3 % of each other are a tie on a shared 2-core machine


def measure(build, fp32) -> dict:
    """p50 here, size, op histogram, TRANSPOSE count and delegate coverage of one route's fp32 TFLite."""
    from edgec.pipeline.bench_step import _one
    from edgec.targets.delegates import coverage_for
    from edgec.formats import size_of
    from edgec.formats.tflite import read_tflite

    hist = read_tflite(fp32.path).histogram
    rec = _one(build, fp32, "model_fp32.tflite") if getattr(build.cfg, "bench", True) else {}
    cov = coverage_for(fp32.path, build.target)
    return {"p50_ms": rec.get("p50_ms"), "p90_ms": rec.get("p90_ms"), "threads": build.target.threads_here(),
            "bytes": size_of(fp32.path), "op_histogram": hist, "ops": sum(hist.values()),
            "transposes": int(hist.get("TRANSPOSE", 0)),
            "delegate_coverage": None if cov is None else
            {k: cov[k] for k in ("delegate", "ops_total", "ops_on_cpu", "share_ops_on_cpu", "share_macs_on_cpu",
                                 "delegated_partitions", "fully_delegated", "ops_on_cpu_by_type")}}


def pick(records: list[dict], target) -> tuple[int, str]:
    """Index into ``records`` (passing attempts with ``measured``) of the winner, and why."""
    size_budget = (target.budgets or {}).get("size_mb")
    fits = [i for i, r in enumerate(records)
            if size_budget is None or r["measured"]["bytes"] <= size_budget * 1e6]
    pool = fits or list(range(len(records)))
    whole = [i for i in pool if all(v.get("ok") for v in (records[i].get("variants") or {}).values())]
    missing = {i: [v for v, r in (records[i].get("variants") or {}).items() if not r.get("ok")] for i in pool}
    pool = whole or pool
    timed = [i for i in pool if records[i]["measured"].get("p50_ms") is not None]
    if not whole:
        missing = {}
    label = lambda i: " -> ".join(records[i]["route"])  # noqa: E731
    if not timed:
        i = pool[0]
        return i, (f"{label(i)}: the first route within the fp32 parity budget (no route could be timed here, "
                   "so search order decides)")
    best = min(records[i]["measured"]["p50_ms"] for i in timed)
    i = next(i for i in timed if records[i]["measured"]["p50_ms"] <= best * (1 + TIE))
    p50 = records[i]["measured"]["p50_ms"]
    others = "; ".join(f"{label(j)} {records[j]['measured']['p50_ms']:.2f} ms" for j in timed if j != i)
    tie = " (within 3 % of the fastest: a tie, the earlier route keeps it)" if p50 > best else ""
    size = f" and the {size_budget} MB size budget" if size_budget is not None and fits else ""
    every = " with every variant within its parity budget" if whole else ""
    left_out = "; ".join(f"{label(j)} left out: {', '.join(missing[j])} missed" for j in missing if missing[j] and whole)
    return i, (f"{label(i)}: fastest fp32 p50 on this machine ({p50:.2f} ms, {records[i]['measured']['threads']} "
               f"threads){tie} among the {len(pool)} routes within the fp32 parity budget{every}{size} of "
               f"{target.name}" + (f"; {others}" if others else "") + (f"; {left_out}" if left_out else ""))


def cross_check(build, routes: list[tuple[str, object, dict]], inputs, outputs) -> dict:
    """The routes' fp32 TFLites on the same validation inputs, each pair compared. ``routes`` is
    ``[(label, fp32 artifact, attempt record)]``; a pair that disagrees names the route closer to
    the source (by its max abs error in its own attempt's parity)."""
    from edgec.validate.compare import verdict
    from edgec.validate.ledger import _compare, budget_for
    from edgec.runtime.isolated import run_task, write_feeds

    validation = build.data.validation
    if validation is None or len(routes) < 2:
        return {"pairs": [], "ran": False}
    _, budget, source = budget_for("tflite:fp32", build.target, build.cfg.parity_budgets)
    with tempfile.TemporaryDirectory(prefix="edgec-routes-") as d:
        work = Path(d)
        feeds = write_feeds(work / "inputs", [s.name for s in inputs], (s.feed for s in validation.samples))
        runs = {}
        for n, (label, art, _) in enumerate(routes):
            task = {"task": "tflite_outputs", "model": str(art.path), "inputs": str(feeds),
                    "outputs": str(work / f"r{n}"), "source_inputs": [s.to_dict() for s in inputs],
                    "source_outputs": [s.to_dict() for s in outputs], "io_map": art.meta.get("io"),
                    "out_hints": None, "threads": build.target.threads_here(), "reference_kernels": False}
            runs[n] = run_task(task)
        pairs = []
        for a in range(len(routes)):
            for b in range(a + 1, len(routes)):
                pairs.append(_pair(routes, runs, work, a, b, budget, _compare, verdict))
    return {"ran": True, "samples": len(validation.samples), "budget": budget, "budget_source": source,
            "pairs": pairs, "agree": all(p.get("agree") for p in pairs)}


def _pair(routes, runs, work, a: int, b: int, budget, compare, verdict) -> dict:
    la, lb = routes[a][0], routes[b][0]
    out = {"a": la, "b": lb}
    errors = [f"{lbl}: {runs[i]['error']}" for i, lbl in ((a, la), (b, lb)) if runs[i].get("error")]
    if errors:
        return {**out, "agree": False, "error": "; ".join(errors)}
    rows = compare(work / f"r{a}", work / f"r{b}")
    misses = [m for r in rows for m in verdict(r, budget)[1]]
    out.update(agree=not misses, max_abs=max((r.get("max_abs", 0.0) for r in rows), default=0.0),
               cosine=min((r["cosine"] for r in rows if r.get("cosine") is not None), default=None))
    if misses:
        errs = {lbl: (rec.get("parity") or {}).get("max_abs") for lbl, _, rec in (routes[a], routes[b])}
        closer = min((k for k in errs if errs[k] is not None), key=lambda k: errs[k], default=None)
        out["misses"] = misses[:3]
        out["matches_source"] = closer
        out["finding"] = (f"{la} and {lb} disagree ({'; '.join(misses[:2])}); {closer} is closer to the source "
                          f"(max abs {errs[closer]:.2g} vs {max(v for v in errs.values() if v is not None):.2g})"
                          if closer else f"{la} and {lb} disagree")
    return out


def summarize_parity(parity: dict) -> dict:
    """Per variant of a route: within budget?, worst max abs / cosine vs the source, the budget."""
    out = {}
    for st in parity.get("stages", []):
        if not st["stage"].startswith("tflite:"):
            continue
        rows = st.get("outputs") or []
        out[st["stage"].split(":", 1)[1]] = {
            "ok": st["ok"], "budget": st.get("budget"),
            "max_abs": max((r.get("max_abs", 0.0) for r in rows), default=None),
            "cosine": min((r["cosine"] for r in rows if r.get("cosine") is not None), default=None),
            **({"error": st["error"]} if st.get("error") else {})}
    return out


def slug(n: int, converters: list[str]) -> str:
    """``routes/<slug>/``: the attempt's place among the compared routes and its converters."""
    return f"{n}-" + "-".join(converters)


def choose(build, passed: list[tuple], inputs, outputs=None) -> tuple:
    """Measure every passing route and build its variants with their ledger, then pick one.
    ``passed`` holds ``(candidate, chain, fp32, steps, attempt record)``; returns the winner's
    first four and why. The winner's variants are built again by the build itself (cache hits)."""
    from edgec.pipeline.parity import run_parity
    from edgec.pipeline.steps import build_variants, loadable, outputs_from

    src = passed[0][1][0]
    for cand, chain, fp32, _, rec in passed:
        rec["measured"] = measure(build, fp32)
        if len(build.variants) > 1:
            n = len(build.steps)
            tflites, skipped = build_variants(build, list(cand.converters), chain[-1], inputs, src, fp32, cand.settings)
            tflites, skipped = loadable(build, tflites, build.left_out + skipped)
            rec["variant_steps"] = [{k: s.get(k) for k in ("name", "variant", "seconds", "cached", "tools",
                                                            "transposes")} for s in build.steps[n:]]
            del build.steps[n:]
        else:
            tflites, skipped = [fp32], []
        outs = outputs or outputs_from(chain + tflites)
        rec["variants"] = summarize_parity(run_parity(build, src, chain[1:], tflites, inputs, outs))
        rec["skipped_variants"], rec["_tflites"] = skipped, tflites
    i, reason = pick([p[4] for p in passed], build.target)
    for n, p in enumerate(passed):
        p[4]["chosen"] = n == i
    build.compared_routes = passed
    build.other_routes = [p for n, p in enumerate(passed) if n != i]
    cand, chain, fp32, steps, _ = passed[i]
    return cand, chain, fp32, steps, reason


def finish(build, search: dict, src, inputs, outputs, chosen_fp32):
    """After the chosen route's build: the other routes' files under ``routes/``, and the routes'
    outputs against each other; returns a writer for the staging directory."""
    from edgec.formats import digest, size_of

    files: dict[str, Path] = {}
    labels = []
    for cand, chain, fp32, steps, rec in build.compared_routes:
        labels.append((" -> ".join(rec["route"]), fp32, rec))
        tflites = rec.pop("_tflites", [fp32])
        if fp32 is chosen_fp32:
            continue
        folder = f"routes/{slug(len(labels), rec['converter'])}"
        rec["artifacts"] = []
        for a in tflites:
            rel = f"{folder}/model_{a.variant}.tflite"
            files[rel] = Path(a.path)
            rec["artifacts"].append({"path": rel, "variant": a.variant, "bytes": size_of(a.path),
                                     "sha256": a.meta.get("sha256") or digest(a.path)})
    search["cross_check"] = cross_check(build, labels, inputs, outputs)

    def wrap(bundle):
        def write(staging: Path) -> None:
            import shutil

            for rel, path in files.items():
                (staging / rel).parent.mkdir(parents=True, exist_ok=True)
                shutil.copyfile(path, staging / rel)
            if bundle is not None:
                bundle(staging)
        return write

    return wrap
