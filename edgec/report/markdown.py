"""Markdown: a compact summary fit for a CI step summary or a pull-request comment."""

from __future__ import annotations

from edgec.report.model import Report


def ms(v) -> str:
    return "—" if v is None else f"{v:.3f}"


def kib(n: int) -> str:
    return f"{n / 1024:.1f}"


def num(v, digits: int = 6) -> str:
    if v is None:
        return "—"
    return f"{v:.{digits}f}" if abs(v) >= 1e-3 or v == 0 else f"{v:.2e}"


def verdict(ok) -> str:
    return "—" if ok is None else ("pass" if ok else "**FAIL**")


def estimate_cell(r) -> str:
    if r.est_p50_ms is None:
        return "—"
    band = f" ({ms(r.est_low_ms)}–{ms(r.est_high_ms)})" if r.est_low_ms is not None else ""
    return f"{ms(r.est_p50_ms)}{band}"


def options_text(options: dict) -> str:
    flat = []
    for k, v in (options or {}).items():
        flat += [f"{k}.{kk}={vv}" for kk, vv in v.items()] if isinstance(v, dict) else [f"{k}={v}"]
    return ", ".join(flat) or "—"


def route_search_markdown(rs: dict | None) -> list[str]:
    if not rs:
        return []
    lines = ["", f"Route search: `{' → '.join(rs['chosen'])}` — {rs['reason']}", ""]
    if rs.get("attempts"):
        lines += ["| # | route | options | result | seconds | reason |", "|---:|---|---|---|---:|---|"]
        for i, a in enumerate(rs["attempts"], 1):
            reason = a["reason"].replace("|", "\\|")
            lines.append(f"| {i} | {' → '.join(a['route'])} | {options_text(a.get('options'))} | "
                         f"{'ok' if a['ok'] else '**failed**'} | {'cached' if a.get('cached') else ms(a['seconds'])} "
                         f"| {reason} |")
    return lines


def render_markdown(rep: Report) -> str:
    m = rep.manifest
    t = m["target"]
    lines = [f"## edgec: {rep.title}", "",
             f"Target **{t['name']}** ({t.get('device', {}).get('name', '')}, "
             f"{t.get('runtime', {}).get('name', '')}/{t.get('runtime', {}).get('delegate', '')}); "
             f"route `{' → '.join(m['route'])}`; edgec {m['edgec_version']}.", ""]
    est_dev = next((r.est_device for r in rep.variants if r.est_device), None)
    dev = next((r.dev_name for r in rep.variants if r.dev_name), None)  # --device: measured there, beside
    lines += ["| variant | size (KiB) | p50 (ms) | p90 (ms) | "
              f"estimated p50 on {est_dev or 'target'} (ms, estimated) | "
              + (f"p50 / p90 measured on {dev} (ms) | " if dev else "") + "parity |",
              "|---|---:|---:|---:|---:|" + ("---:|" if dev else "") + "---|"]
    for r in rep.variants:
        lines.append(f"| {r.variant} | {kib(r.bytes)} | {ms(r.p50_ms)} | {ms(r.p90_ms)} | {estimate_cell(r)} | "
                     + (f"{ms(r.dev_p50_ms)} / {ms(r.dev_p90_ms)} | " if dev else "") + f"{verdict(r.parity_ok)} |")
    if rep.stages:
        p = m.get("parity") or {}
        lines += ["", f"Parity against the source model ({p.get('inputs', 'inputs not recorded')}):", "",
                  "| stage | output | max abs | cosine | top-1 | budget | verdict |",
                  "|---|---|---:|---:|---:|---|---|"]
        for s in rep.stages:
            budget = ", ".join(f"{k} {v:g}" for k, v in s.budget.items())
            for o in s.outputs:
                lines.append(f"| {s.stage} | {o.get('output', '')} | {num(o.get('max_abs'))} | "
                             f"{num(o.get('cosine'))} | {num(o.get('top1'), 3)} | {budget} | {verdict(o.get('ok'))} |")
    lines += route_search_markdown(m.get("route_search"))
    from edgec.report.routes import comparison_markdown

    lines += comparison_markdown(m.get("route_search"))  # --compare-routes builds only
    from edgec.report.summary import canonical_lines

    canon = canonical_lines(m.get("steps") or [])
    lines += ["", *canon] if canon else []
    bench_cond = next((b.get("conditions") for b in (m.get("bench") or {}).values() if isinstance(b, dict)
                       and b.get("conditions")), None) if isinstance(m.get("bench"), dict) else None
    if bench_cond:
        lines += ["", "Measured on: " + ", ".join(f"{k} {v}" for k, v in bench_cond.items()
                                                    if isinstance(v, (str, int, float)))]
    if not any(r.p50_ms is not None for r in rep.variants):
        lines += ["", "_No latency was measured in this build._"]
    return "\n".join(lines) + "\n"
