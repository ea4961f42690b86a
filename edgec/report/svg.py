"""Tiny, dependency-free SVG charts for the self-contained HTML report.

Each function returns an ``<svg>`` string with a title, axes and labelled marks; nothing is fetched
at view time. Numbers are passed in already computed; charts never invent data.
"""

from __future__ import annotations

import math
from html import escape

PALETTE = ["#2563eb", "#16a34a", "#d97706", "#dc2626", "#7c3aed", "#0891b2", "#be185d", "#4d7c0f"]
W, ROW = 640, 26


def _fmt(v: float) -> str:
    if v is None or (isinstance(v, float) and not math.isfinite(v)):
        return "n/a"
    a = abs(v)
    if a != 0 and a < 1e-3:
        return f"{v:.2e}"
    if a >= 1000:
        return f"{v:,.0f}"
    return f"{v:.4g}"


def _svg(width: int, height: int, body: list[str], title: str) -> str:
    return (f'<svg xmlns="http://www.w3.org/2000/svg" class="chart" role="img" width="{width}" height="{height}" '
            f'viewBox="0 0 {width} {height}" aria-label="{escape(title)}"><title>{escape(title)}</title>'
            + "".join(body) + "</svg>")


def hbars(title: str, rows: list[tuple], unit: str = "", budget: float | None = None,
          log: bool = False, higher_is_better: bool = False) -> str:
    """Horizontal bars, one per (label, value[, ok]); an optional budget line. Bars are green/red by
    their own verdict when one is given, else by the budget line, else by palette."""
    rows = [(r[0], r[1], r[2] if len(r) > 2 else None) for r in rows if r[1] is not None]
    if not rows:
        return ""
    left, right = 190, 90
    height = 30 + ROW * len(rows) + 24
    vals = [v for _, v, _ in rows if math.isfinite(v)] + ([budget] if budget is not None else [])
    if log:
        pos = [v for v in vals if v > 0] or [1.0]
        lo, hi = math.log10(min(pos)) - 0.5, math.log10(max(pos)) + 0.2

        def x(v):
            v = max(v, 10 ** lo)
            return left + (math.log10(v) - lo) / (hi - lo or 1) * (W - left - right)
    else:
        hi = max(vals + [0]) * 1.05 or 1.0

        def x(v):
            return left + max(v, 0) / hi * (W - left - right)
    body = [f'<text x="8" y="18" class="ct">{escape(title)}</text>']
    for i, (lab, v, verdict) in enumerate(rows):
        y = 30 + i * ROW
        ok = verdict if verdict is not None else \
            (budget is None or (v >= budget if higher_is_better else v <= budget))
        judged = verdict is not None or budget is not None
        color = ("#16a34a" if ok else "#dc2626") if judged else PALETTE[i % len(PALETTE)]
        xv = x(v) if math.isfinite(v) else W - right
        body.append(f'<text x="{left - 6}" y="{y + 15}" text-anchor="end" class="cl">{escape(lab)}</text>')
        body.append(f'<rect x="{left}" y="{y + 3}" width="{max(xv - left, 1):.1f}" height="{ROW - 8}" '
                    f'fill="{color}"><title>{escape(lab)}: {_fmt(v)} {unit}</title></rect>')
        body.append(f'<text x="{xv + 4:.1f}" y="{y + 15}" class="cv">{_fmt(v)} {escape(unit)}</text>')
    if budget is not None:
        bx = x(budget)
        body.append(f'<line x1="{bx:.1f}" x2="{bx:.1f}" y1="26" y2="{height - 20}" class="budget"/>')
        body.append(f'<text x="{bx:.1f}" y="{height - 6}" text-anchor="middle" class="cv">budget {_fmt(budget)}</text>')
    return _svg(W, height, body, title)


def distributions(title: str, series: list[tuple[str, list[float]]], unit: str = "ms") -> str:
    """Per-series box plot (p5/p25/p50/p75/p95) with the raw samples as dots."""
    series = [(lab, sorted(s)) for lab, s in series if s]
    if not series:
        return ""
    left, right = 190, 40
    height = 30 + 34 * len(series) + 30
    lo = min(s[0] for _, s in series)
    hi = max(s[-1] for _, s in series)
    span = (hi - lo) or max(hi, 1e-9)
    lo, hi = lo - 0.05 * span, hi + 0.05 * span

    def x(v):
        return left + (v - lo) / (hi - lo) * (W - left - right)

    def q(s, p):
        k = (len(s) - 1) * p
        f = int(math.floor(k))
        c = min(f + 1, len(s) - 1)
        return s[f] + (s[c] - s[f]) * (k - f)

    body = [f'<text x="8" y="18" class="ct">{escape(title)}</text>']
    for i, (lab, s) in enumerate(series):
        y = 32 + i * 34
        c = PALETTE[i % len(PALETTE)]
        p5, p25, p50, p75, p95 = (q(s, p) for p in (0.05, 0.25, 0.5, 0.75, 0.95))
        body.append(f'<text x="{left - 6}" y="{y + 16}" text-anchor="end" class="cl">{escape(lab)}</text>')
        body.append(f'<line x1="{x(p5):.1f}" x2="{x(p95):.1f}" y1="{y + 12}" y2="{y + 12}" stroke="{c}"/>')
        body.append(f'<rect x="{x(p25):.1f}" y="{y + 3}" width="{max(x(p75) - x(p25), 1):.1f}" height="18" '
                    f'fill="{c}" fill-opacity="0.25" stroke="{c}"><title>{escape(lab)}: p50 {_fmt(p50)} {unit}, '
                    f'p25-p75 {_fmt(p25)}-{_fmt(p75)}, n={len(s)}</title></rect>')
        body.append(f'<line x1="{x(p50):.1f}" x2="{x(p50):.1f}" y1="{y + 1}" y2="{y + 23}" stroke="{c}" '
                    f'stroke-width="2.5"/>')
        step = max(1, len(s) // 200)
        for j, v in enumerate(s[::step]):
            jitter = ((j * 7) % 11 - 5) * 0.9
            body.append(f'<circle cx="{x(v):.1f}" cy="{y + 12 + jitter:.1f}" r="1.4" fill="{c}" fill-opacity="0.5"/>')
        body.append(f'<text x="{W - right + 4}" y="{y + 16}" class="cv">{_fmt(p50)}</text>')
    for k in range(5):
        v = lo + (hi - lo) * k / 4
        body.append(f'<text x="{x(v):.1f}" y="{height - 8}" text-anchor="middle" class="cv">{_fmt(v)}</text>')
    body.append(f'<text x="{W - 8}" y="{height - 8}" text-anchor="end" class="cv">{escape(unit)}</text>')
    return _svg(W, height, body, title)


def scatter(title: str, points: list[dict], xlabel: str, ylabel: str) -> str:
    """Points {label, x, y, size}: bubble area proportional to size; the Pareto front is joined."""
    pts = [p for p in points if p.get("x") is not None and p.get("y") is not None]
    if not pts:
        return ""
    height, left, bottom, top, right = 360, 70, 46, 30, 30
    xs, ys = [p["x"] for p in pts], [p["y"] for p in pts]
    x0, x1 = min(xs), max(xs)
    y0, y1 = min(ys), max(ys)
    xpad, ypad = (x1 - x0) * 0.15 or max(abs(x1), 1e-3) * 0.2, (y1 - y0) * 0.15 or max(abs(y1), 1e-3) * 0.05
    x0, x1, y0, y1 = x0 - xpad, x1 + xpad, y0 - ypad, y1 + ypad

    def px(v):
        return left + (v - x0) / (x1 - x0) * (W - left - right)

    def py(v):
        return height - bottom - (v - y0) / (y1 - y0) * (height - top - bottom)

    smax = max((p.get("size") or 1) for p in pts)
    body = [f'<text x="8" y="18" class="ct">{escape(title)}</text>',
            f'<line x1="{left}" x2="{W - right}" y1="{height - bottom}" y2="{height - bottom}" class="axis"/>',
            f'<line x1="{left}" x2="{left}" y1="{top}" y2="{height - bottom}" class="axis"/>',
            f'<text x="{(left + W - right) / 2}" y="{height - 8}" text-anchor="middle" class="cl">{escape(xlabel)}</text>',
            f'<text x="14" y="{(top + height - bottom) / 2}" transform="rotate(-90 14 {(top + height - bottom) / 2})" '
            f'text-anchor="middle" class="cl">{escape(ylabel)}</text>']
    for k in range(5):
        xv, yv = x0 + (x1 - x0) * k / 4, y0 + (y1 - y0) * k / 4
        body.append(f'<text x="{px(xv):.1f}" y="{height - bottom + 14}" text-anchor="middle" class="cv">{_fmt(xv)}</text>')
        body.append(f'<text x="{left - 4}" y="{py(yv) + 4:.1f}" text-anchor="end" class="cv">{_fmt(yv)}</text>')
    front = pareto_front(pts)
    if len(front) > 1:
        d = " ".join(f"{px(p['x']):.1f},{py(p['y']):.1f}" for p in sorted(front, key=lambda p: p["x"]))
        body.append(f'<polyline points="{d}" class="front"/>')
    for i, p in enumerate(pts):
        r = 5 + 14 * math.sqrt((p.get("size") or 1) / smax)
        c = PALETTE[i % len(PALETTE)]
        body.append(f'<circle cx="{px(p["x"]):.1f}" cy="{py(p["y"]):.1f}" r="{r:.1f}" fill="{c}" fill-opacity="0.55" '
                    f'stroke="{c}"><title>{escape(p["label"])}: {xlabel} {_fmt(p["x"])}, {ylabel} {_fmt(p["y"])}, '
                    f'size {_fmt(p.get("size") or 0)}</title></circle>')
        body.append(f'<text x="{px(p["x"]) + r + 3:.1f}" y="{py(p["y"]) + 4:.1f}" class="cl">{escape(p["label"])}</text>')
    return _svg(W, height, body, title)


def pareto_front(points: list[dict]) -> list[dict]:
    """Points not dominated by another (lower x, higher y, smaller size are better)."""
    def dominates(a, b):
        ge = a["x"] <= b["x"] and a["y"] >= b["y"] and (a.get("size") or 0) <= (b.get("size") or 0)
        gt = a["x"] < b["x"] or a["y"] > b["y"] or (a.get("size") or 0) < (b.get("size") or 0)
        return ge and gt

    return [p for p in points if not any(dominates(q, p) for q in points if q is not p)]


def line(title: str, series: list[tuple[str, list[float]]], xlabel: str, ylabel: str,
         threshold: float | None = None, marks: list[int] | None = None) -> str:
    """Lines over an index (e.g. SNR per layer in graph order) with an optional threshold."""
    series = [(lab, [v for v in s]) for lab, s in series if s]
    if not series:
        return ""
    height, left, bottom, top, right = 300, 60, 44, 30, 20
    n = max(len(s) for _, s in series)
    vals = [v for _, s in series for v in s if v is not None and math.isfinite(v)] + \
        ([threshold] if threshold is not None else [])
    y0, y1 = (min(vals), max(vals)) if vals else (0, 1)
    if y0 == y1:
        y0, y1 = y0 - 1, y1 + 1

    def px(i):
        return left + i / max(n - 1, 1) * (W - left - right)

    def py(v):
        v = min(max(v, y0), y1)
        return height - bottom - (v - y0) / (y1 - y0) * (height - top - bottom)

    body = [f'<text x="8" y="18" class="ct">{escape(title)}</text>',
            f'<line x1="{left}" x2="{W - right}" y1="{height - bottom}" y2="{height - bottom}" class="axis"/>',
            f'<line x1="{left}" x2="{left}" y1="{top}" y2="{height - bottom}" class="axis"/>',
            f'<text x="{(left + W - right) / 2}" y="{height - 8}" text-anchor="middle" class="cl">{escape(xlabel)}</text>',
            f'<text x="12" y="{(top + height - bottom) / 2}" transform="rotate(-90 12 {(top + height - bottom) / 2})" '
            f'text-anchor="middle" class="cl">{escape(ylabel)}</text>']
    for k in range(5):
        yv = y0 + (y1 - y0) * k / 4
        body.append(f'<text x="{left - 4}" y="{py(yv) + 4:.1f}" text-anchor="end" class="cv">{_fmt(yv)}</text>')
    if threshold is not None:
        body.append(f'<line x1="{left}" x2="{W - right}" y1="{py(threshold):.1f}" y2="{py(threshold):.1f}" '
                    f'class="budget"/>')
    for i, (lab, s) in enumerate(series):
        c = PALETTE[i % len(PALETTE)]
        d = " ".join(f"{px(j):.1f},{py(v):.1f}" for j, v in enumerate(s) if v is not None and math.isfinite(v))
        body.append(f'<polyline points="{d}" fill="none" stroke="{c}" stroke-width="1.8"><title>{escape(lab)}'
                    f'</title></polyline>')
        body.append(f'<text x="{W - right}" y="{top + 12 + 14 * i}" text-anchor="end" class="cl" fill="{c}">'
                    f'{escape(lab)}</text>')
    for m in marks or []:
        body.append(f'<line x1="{px(m):.1f}" x2="{px(m):.1f}" y1="{top}" y2="{height - bottom}" class="mark"/>')
    return _svg(W, height, body, title)
