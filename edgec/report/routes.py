"""The route comparison of a ``--compare-routes`` build (``edgec.pipeline.route_compare``): one table and a
p50/size plot, in Markdown and HTML, from ``route_search`` in the manifest."""

from __future__ import annotations

from html import escape

from edgec.report import svg


def _rows(rs: dict) -> list[dict]:
    out = []
    for i, a in enumerate(rs.get("attempts") or [], 1):
        mes = a.get("measured")
        if not mes:
            continue
        cov = mes.get("delegate_coverage")
        variants = a.get("variants") or {}
        out.append({
            "n": i, "route": " → ".join(a["route"]), "chosen": bool(a.get("chosen")),
            "max_abs": (a.get("parity") or {}).get("max_abs"), "cosine": (a.get("parity") or {}).get("cosine"),
            "p50_ms": mes.get("p50_ms"), "threads": mes.get("threads"), "mb": mes["bytes"] / 1e6,
            "ops": mes.get("ops"), "transposes": mes.get("transposes"),
            "coverage": "—" if cov is None else f"{cov['delegate']}: {cov['ops_total'] - cov['ops_on_cpu']}/"
                                                f"{cov['ops_total']} ops",
            "variants": ", ".join(f"{v} {'ok' if r.get('ok') else 'MISS'}" for v, r in variants.items()) or "—",
            "top_ops": ", ".join(f"{k} {v}" for k, v in sorted((mes.get("op_histogram") or {}).items(),
                                                               key=lambda kv: -kv[1])[:4])})
    return out


def _g(v, fmt: str) -> str:
    return "—" if v is None else format(v, fmt)


def comparison_markdown(rs: dict | None) -> list[str]:
    rows = _rows(rs or {})
    if not rows:
        return []
    lines = ["", "Route comparison (`--compare-routes`; fp32 measured on this machine):", "",
             "| # | route | chosen | fp32 max abs | cosine | p50 (ms) | size (MB) | ops | TRANSPOSE | delegate | variants |",
             "|---:|---|---|---:|---:|---:|---:|---:|---:|---|---|"]
    for r in rows:
        lines.append(f"| {r['n']} | {r['route']} | {'**chosen**' if r['chosen'] else ''} | {_g(r['max_abs'], '.2g')} | "
                     f"{_g(r['cosine'], '.6f')} | {_g(r['p50_ms'], '.2f')} | {r['mb']:.2f} | {r['ops']} | "
                     f"{r['transposes']} | {r['coverage']} | {r['variants']} |")
    lines += ["", f"Chosen: {rs['reason']}"]
    cc = rs.get("cross_check") or {}
    for p in cc.get("pairs", []):
        lines.append(f"- {p['a']} vs {p['b']}: " + (p.get("error") or (
            f"agree (max abs {p['max_abs']:.2g}, cosine {p['cosine']:.6f})" if p.get("agree") else p.get("finding", ""))))
    return lines


def comparison_html(rs: dict | None) -> str:
    rows = _rows(rs or {})
    if not rows:
        return ""
    body = "".join(
        f"<tr><td class=n>{r['n']}</td><td>{escape(r['route'])}{' <b>(chosen)</b>' if r['chosen'] else ''}</td>"
        f"<td class=n>{_g(r['max_abs'], '.2g')}</td><td class=n>{_g(r['cosine'], '.6f')}</td>"
        f"<td class=n>{_g(r['p50_ms'], '.2f')}</td><td class=n>{r['mb']:.2f}</td><td class=n>{r['ops']}</td>"
        f"<td class=n>{r['transposes']}</td><td>{escape(r['coverage'])}</td><td>{escape(r['variants'])}</td>"
        f"<td>{escape(r['top_ops'])}</td></tr>" for r in rows)
    table = ("<table><tr><th>#</th><th>route</th><th>fp32 max abs</th><th>cosine</th><th>p50 (ms)</th>"
             "<th>size (MB)</th><th>ops</th><th>TRANSPOSE</th><th>delegate</th><th>variants</th><th>top ops</th></tr>"
             f"{body}</table>")
    p50 = svg.hbars(f"fp32 p50 per route on this machine ({rows[0]['threads']} threads)",
                    [(f"#{r['n']} {r['route']}", r["p50_ms"]) for r in rows], unit="ms")
    size = svg.hbars("fp32 size per route", [(f"#{r['n']} {r['route']}", r["mb"]) for r in rows], unit="MB")
    cc = rs.get("cross_check") or {}
    pairs = "".join(f"<li>{escape(p['a'])} vs {escape(p['b'])}: " + escape(p.get("error") or (
        f"agree (max abs {p['max_abs']:.2g}, cosine {p['cosine']:.6f})" if p.get("agree") else p.get("finding", "")))
        + "</li>" for p in cc.get("pairs", []))
    return (f"<section><h2>Route comparison</h2><p>Chosen: {escape(rs['reason'])}</p>{table}{p50}{size}"
            + (f"<p>The routes' fp32 outputs against each other ({cc.get('samples')} validation inputs):</p>"
               f"<ul>{pairs}</ul>" if pairs else "") + "</section>")
