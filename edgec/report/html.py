"""HTML: one self-contained file (inline CSS and SVG, no script, nothing fetched at view time) with
the figures a person decides from, each with the conditions it was measured under beside it."""

from __future__ import annotations

import json
from html import escape

from edgec.report import svg
from edgec.report.markdown import estimate_cell, kib, ms, num, options_text
from edgec.report.model import Report

CSS = """
body{font:14px/1.45 system-ui,-apple-system,Segoe UI,Roboto,sans-serif;margin:0;color:#111827;background:#f9fafb}
header{background:#111827;color:#f9fafb;padding:18px 28px}header h1{margin:0;font-size:20px}
header p{margin:4px 0 0;color:#d1d5db}main{padding:18px 28px;max-width:1100px}
section{background:#fff;border:1px solid #e5e7eb;border-radius:8px;padding:14px 18px;margin:0 0 16px}
h2{font-size:16px;margin:0 0 10px}table{border-collapse:collapse;width:100%;font-size:13px}
th,td{border-bottom:1px solid #e5e7eb;padding:5px 8px;text-align:left}td.n{text-align:right;font-variant-numeric:tabular-nums}
.fig{display:flex;gap:18px;flex-wrap:wrap;align-items:flex-start}.cond{font-size:12px;color:#4b5563;max-width:380px}
.ok{color:#15803d;font-weight:600}.fail{color:#b91c1c;font-weight:700}.muted{color:#6b7280}
svg.chart{background:#fff}svg .ct{font-weight:600;font-size:13px}svg .cl{font-size:12px}svg .cv{font-size:11px;fill:#374151}
svg .budget{stroke:#111827;stroke-dasharray:4 3}svg .axis{stroke:#9ca3af}svg .front{fill:none;stroke:#6b7280;stroke-dasharray:5 4}
svg .mark{stroke:#dc2626;stroke-dasharray:2 2}code{background:#f3f4f6;padding:1px 4px;border-radius:4px}
"""


def _verdict_html(ok) -> str:
    return '<span class="muted">—</span>' if ok is None else \
        ('<span class="ok">pass</span>' if ok else '<span class="fail">FAIL</span>')


def _figure(title: str, chart: str, conditions: list[str]) -> str:
    if not chart:
        return ""
    cond = "".join(f"<li>{escape(c)}</li>" for c in conditions)
    return (f'<section><h2>{escape(title)}</h2><div class="fig">{chart}'
            f'<div class="cond"><b>Conditions</b><ul>{cond}</ul></div></div></section>')


def _bench_conditions(m: dict) -> list[str]:
    bench = m.get("bench") if isinstance(m.get("bench"), dict) else {}
    for b in bench.values():
        if isinstance(b, dict) and isinstance(b.get("conditions"), dict):
            return [f"{k}: {v}" for k, v in b["conditions"].items() if not isinstance(v, (dict, list))]
    return ["no measurement recorded"]


def _summary_table(rep: Report) -> str:
    dev = next((r.dev_name for r in rep.variants if r.dev_name), None)  # --device: measured there, beside
    rows = "".join(
        f"<tr><td>{escape(r.variant)}</td><td class=n>{kib(r.bytes)}</td><td class=n>{ms(r.p50_ms)}</td>"
        f"<td class=n>{ms(r.p90_ms)}</td><td class=n>{escape(estimate_cell(r))}</td>"
        + (f"<td class=n>{ms(r.dev_p50_ms)} / {ms(r.dev_p90_ms)}</td>" if dev else "")
        + f"<td>{_verdict_html(r.parity_ok)}</td></tr>" for r in rep.variants)
    return ("<section><h2>Variants</h2><table><tr><th>variant</th><th>size (KiB)</th><th>p50 (ms)</th>"
            "<th>p90 (ms)</th><th>estimated p50 on target (ms)</th>"
            + (f"<th>p50 / p90 measured on {escape(dev)} (ms)</th>" if dev else "")
            + "<th>parity</th></tr>" + rows + "</table></section>")


def _parity_table(rep: Report) -> str:
    if not rep.stages:
        return ""
    rows = []
    for s in rep.stages:
        budget = ", ".join(f"{k} {v:g}" for k, v in s.budget.items())
        for o in s.outputs:
            rows.append(f"<tr><td>{escape(s.stage)}</td><td>{escape(str(o.get('output', '')))}</td>"
                        f"<td class=n>{num(o.get('max_abs'))}</td><td class=n>{num(o.get('cosine'))}</td>"
                        f"<td class=n>{num(o.get('top1'), 3)}</td><td>{escape(budget)}</td>"
                        f"<td>{_verdict_html(o.get('ok'))}</td></tr>")
    return ("<section><h2>Parity ledger</h2><table><tr><th>stage</th><th>output</th><th>max abs</th><th>cosine</th>"
            "<th>top-1</th><th>budget</th><th>verdict</th></tr>" + "".join(rows) + "</table></section>")


def _parity_figures(rep: Report, m: dict) -> str:
    if not rep.stages:
        return ""
    inputs = (m.get("parity") or {}).get("inputs", "not recorded")
    err = svg.hbars("max abs error vs source (log scale; green: within the stage's budget)",
                    [(s.stage, max((o.get("max_abs") or 0.0) for o in s.outputs), s.ok)
                     for s in rep.stages if s.outputs], log=True)
    cos = svg.hbars("cosine similarity vs source", [(s.stage, min((o.get("cosine") or 0.0) for o in s.outputs), s.ok)
                                                    for s in rep.stages if s.outputs], higher_is_better=True)
    top = [(s.stage, min(o["top1"] for o in s.outputs if "top1" in o), s.ok) for s in rep.stages
           if any("top1" in o for o in s.outputs)]
    top1 = svg.hbars("top-1 agreement with source", top, higher_is_better=True) if top else ""
    budgets = [f"{s.stage} budget: " + ", ".join(f"{k} {v:g}" for k, v in s.budget.items()) for s in rep.stages]
    cond = [f"inputs: {inputs}", "each stage compared with the source model on the same inputs"] + budgets
    return _figure("Parity per stage", err + cos + top1, cond)


def _latency_figure(rep: Report, m: dict) -> str:
    series = [(r.variant, r.samples_ms) for r in rep.variants if r.samples_ms]
    chart = svg.distributions("latency per run (measured here)", series)
    return _figure("Latency distribution", chart, _bench_conditions(m))


def _pareto_figure(rep: Report, m: dict) -> str:
    pts = []
    for r in rep.variants:
        lat = r.p50_ms if r.p50_ms is not None else r.est_p50_ms
        agree = r.top1 if r.top1 is not None else r.cosine
        if lat is not None and agree is not None:
            pts.append({"label": r.variant, "x": lat, "y": agree, "size": r.bytes})
    if not pts:
        return ""
    measured = all(r.p50_ms is not None for r in rep.variants)
    xlabel = "p50 latency (ms, measured)" if measured else "p50 latency (ms, estimated)"
    ylabel = "top-1 agreement" if all(r.top1 is not None for r in rep.variants) else "cosine vs source"
    chart = svg.scatter("agreement vs latency (bubble area = file size)", pts, xlabel, ylabel)
    return _figure("Trade-off across variants", chart, ["dashed line: the Pareto front (faster, more accurate, "
                                                        "smaller)"] + _bench_conditions(m))


def _size_figure(rep: Report) -> str:
    chart = svg.hbars("file size per variant", [(r.variant, r.bytes / 1024) for r in rep.variants], unit="KiB")
    return _figure("Size", chart, ["bytes of model_<variant>.tflite as written"])


def _divergence_figure(m: dict) -> str:
    loc = (m.get("parity") or {}).get("localization") or []
    loc = loc if isinstance(loc, list) else [loc]
    charts = []
    for item in loc:
        layers = item.get("layers") or []
        if not layers:
            continue
        snr = [lay.get("snr_db") for lay in layers]
        first = item.get("first_divergent_index")
        charts.append(svg.line(f"per-layer SNR, {item.get('stage', '')}", [("SNR dB", snr)], "layer (graph order)",
                               "SNR (dB)", threshold=item.get("threshold_db"),
                               marks=[first] if isinstance(first, int) else None))
    if not charts:
        return ""
    return _figure("Per-layer divergence", "".join(charts), ["red mark: first layer crossing the budget"])


def render_html(rep: Report) -> str:
    m = rep.manifest
    t = m["target"]
    parts = [_summary_table(rep), _latency_figure(rep, m), _size_figure(rep), _parity_figures(rep, m),
             _pareto_figure(rep, m), _divergence_figure(m), _parity_table(rep), _routes_table(m), _steps_table(m)]
    head = (f"<header><h1>edgec report: {escape(rep.title)}</h1><p>{escape(t.get('description', ''))} · route "
            f"{escape(' → '.join(m['route']))} · edgec {escape(m['edgec_version'])} · {escape(m.get('created', ''))}"
            "</p></header>")
    data = escape(json.dumps({"schema_version": m["schema_version"], "target": t["name"]}))
    return ("<!doctype html><html lang=en><head><meta charset=utf-8><meta name=viewport "
            f"content='width=device-width'><title>edgec report: {escape(rep.title)}</title><style>{CSS}</style>"
            f"</head><body data-edgec='{data}'>{head}<main>{''.join(parts)}</main></body></html>\n")


def _routes_table(m: dict) -> str:
    rs = m.get("route_search")
    if not rs:
        return ""
    rows = "".join(
        f"<tr><td class=n>{i}</td><td>{escape(' → '.join(a['route']))}</td>"
        f"<td>{escape(options_text(a.get('options')))}</td><td>{_verdict_html(a['ok'])}</td>"
        f"<td class=n>{'cached' if a.get('cached') else escape(ms(a['seconds']))}</td>"
        f"<td>{escape(a['reason'])}</td></tr>" for i, a in enumerate(rs.get("attempts") or [], 1))
    table = ("<table><tr><th>#</th><th>route</th><th>options</th><th>result</th><th>seconds</th><th>reason</th></tr>"
             f"{rows}</table>") if rows else ""
    from edgec.report.routes import comparison_html

    return (f"<section><h2>Route search</h2><p>Chosen: <b>{escape(' → '.join(rs['chosen']))}</b> — "
            f"{escape(rs['reason'])}</p>{table}</section>") + comparison_html(rs)  # --compare-routes builds only


def _steps_table(m: dict) -> str:
    rows = "".join(
        f"<tr><td>{escape(s['name'])}{' [' + escape(s['variant']) + ']' if s.get('variant') else ''}</td>"
        f"<td>{'cached' if s.get('cached') else escape(ms(s.get('seconds')))}</td>"
        f"<td>{escape(', '.join(f'{k} {v}' for k, v in s.get('tools', {}).items()))}</td>"
        f"<td><code>{escape(s.get('output_sha256', '')[:12])}</code></td></tr>" for s in m["steps"])
    env = m.get("environment", {})
    return ("<section><h2>Steps</h2><table><tr><th>step</th><th>seconds</th><th>tools</th><th>output sha256</th></tr>"
            f"{rows}</table><p class=muted>python {escape(str(env.get('python')))} on "
            f"{escape(str(env.get('platform')))}, {escape(str(env.get('cpu_count')))} cores</p></section>")

