"""Two builds side by side (e.g. before/after a change): per variant, size, latency and parity."""

from __future__ import annotations

from html import escape

from edgec.report import svg
from edgec.report.html import CSS
from edgec.report.markdown import kib, ms, num, verdict
from edgec.report.model import Report


def _delta(a, b, pct: bool = True) -> str:
    if a is None or b is None:
        return "—"
    if pct and a:
        return f"{(b - a) / a * 100:+.1f}%"
    return f"{b - a:+.3g}"


def _pairs(ra: Report, rb: Report):
    va = {r.variant: r for r in ra.variants}
    vb = {r.variant: r for r in rb.variants}
    for v in list(va) + [v for v in vb if v not in va]:
        yield v, va.get(v), vb.get(v)


def _get(r, attr):
    return getattr(r, attr) if r is not None else None


def render_comparison_markdown(ra: Report, rb: Report, name_a: str, name_b: str) -> str:
    lines = [f"## edgec comparison: A = `{name_a}`, B = `{name_b}`", "",
             f"A: {ra.title}, route `{' → '.join(ra.manifest['route'])}`; "
             f"B: {rb.title}, route `{' → '.join(rb.manifest['route'])}`", "",
             "| variant | size A (KiB) | size B (KiB) | Δ size | p50 A (ms) | p50 B (ms) | Δ p50 | cosine A | "
             "cosine B | parity A | parity B |",
             "|---|---:|---:|---:|---:|---:|---:|---:|---:|---|---|"]
    for v, a, b in _pairs(ra, rb):
        lines.append(
            f"| {v} | {kib(a.bytes) if a else '—'} | {kib(b.bytes) if b else '—'} | "
            f"{_delta(_get(a, 'bytes'), _get(b, 'bytes'))} | {ms(_get(a, 'p50_ms'))} | {ms(_get(b, 'p50_ms'))} | "
            f"{_delta(_get(a, 'p50_ms'), _get(b, 'p50_ms'))} | {num(_get(a, 'cosine'))} | {num(_get(b, 'cosine'))} | "
            f"{verdict(_get(a, 'parity_ok'))} | {verdict(_get(b, 'parity_ok'))} |")
    return "\n".join(lines) + "\n"


def render_comparison_html(ra: Report, rb: Report, name_a: str, name_b: str) -> str:
    rows = []
    sizes = []
    for v, a, b in _pairs(ra, rb):
        rows.append(f"<tr><td>{escape(v)}</td><td class=n>{kib(a.bytes) if a else '—'}</td>"
                    f"<td class=n>{kib(b.bytes) if b else '—'}</td><td class=n>{ms(_get(a, 'p50_ms'))}</td>"
                    f"<td class=n>{ms(_get(b, 'p50_ms'))}</td><td class=n>{_delta(_get(a, 'p50_ms'), _get(b, 'p50_ms'))}"
                    f"</td><td>{verdict(_get(a, 'parity_ok'))}</td><td>{verdict(_get(b, 'parity_ok'))}</td></tr>")
        sizes += [(f"A {v}", a.bytes / 1024) if a else None, (f"B {v}", b.bytes / 1024) if b else None]
    chart = svg.hbars("file size, A vs B", [s for s in sizes if s], unit="KiB")
    lat = [(f"{k} {r.variant}", r.samples_ms) for k, rep in (("A", ra), ("B", rb)) for r in rep.variants
           if r.samples_ms]
    dist = svg.distributions("latency per run, A vs B", lat)
    return ("<!doctype html><html lang=en><head><meta charset=utf-8><title>edgec comparison</title>"
            f"<style>{CSS}</style></head><body><header><h1>edgec comparison</h1><p>A = {escape(name_a)} · "
            f"B = {escape(name_b)}</p></header><main><section><h2>Variants</h2><table><tr><th>variant</th>"
            "<th>size A</th><th>size B</th><th>p50 A</th><th>p50 B</th><th>Δ p50</th><th>parity A</th>"
            f"<th>parity B</th></tr>{''.join(rows)}</table></section><section>{chart}{dist}</section>"
            "</main></body></html>\n")
