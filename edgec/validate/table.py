"""The parity ledger as a text table (the manifest's ``parity`` holds the same numbers), and the one
column-aligning helper every text table of the build summary uses (``align``)."""

from __future__ import annotations

import math

COLUMNS = ("stage", "vs", "max_abs", "mean_abs", "max_rel", "cosine", "cos min", "SNR dB", "top1", "top1 p≥.5",
           "top5", "verdict")
_NUMERIC = tuple(range(2, 11))  # right-aligned: every column but stage, vs and verdict


def align(rows: list[list[str]], right: tuple[int, ...] = (), indent: str = "  ", sep: str = "  ") -> list[str]:
    """Rows of cells as lines whose columns line up: each column as wide as its widest cell, the
    columns numbered in ``right`` right-aligned. A row may be shorter than the table: its last cell
    then runs on unpadded (a note such as "not measured: ..."), and does not widen its column."""
    ncols = max((len(r) for r in rows), default=0)
    widths = [max((len(r[i]) for r in rows if i < len(r) and (len(r) == ncols or i < len(r) - 1)), default=0)
              for i in range(ncols)]
    lines = []
    for r in rows:
        cells = [c if len(r) < ncols and i == len(r) - 1 else c.rjust(widths[i]) if i in right else c.ljust(widths[i])
                 for i, c in enumerate(r)]
        lines.append((indent + sep.join(cells)).rstrip())
    return lines


def _num(v, fmt: str = ".2e") -> str:
    if v is None:
        return "-"
    if isinstance(v, float) and math.isinf(v):
        return "inf" if v > 0 else "-inf"
    return format(v, fmt)


def _row(stage: str, vs: str, m: dict | None, verdict: str = "") -> list[str]:
    if not m:
        return [stage, vs, "-", *[""] * 8, verdict]
    return [stage, vs, _num(m.get("max_abs")), _num(m.get("mean_abs")), _num(m.get("max_rel")),
            _num(m.get("cosine"), ".6f"), _num(m.get("cosine_min"), ".6f"), _num(m.get("snr_db"), ".1f"),
            _num(m.get("top1"), ".3f"), _num(m.get("top1_confident"), ".3f"), _num(m.get("top5"), ".3f"), verdict]


def _budget(b: dict) -> str:
    return ", ".join(f"{k} {v:g}" for k, v in b.items())


def _stage_rows(st: dict, multi: bool) -> list[list[str]]:
    name = st["stage"]
    if st.get("error"):
        return [_row(name, "source", None, f"ERROR: {st['error']}")]
    rows = []
    for o in st["outputs"]:
        label = f"{name}" + (f"[{o['output'][:10]}]" if multi else "")
        verdict = "ok" if o["ok"] else "MISS: " + "; ".join(o["misses"])
        rows.append(_row(label, "source", o, f"{verdict} ({_budget(st['budget'])})"))
        if st["previous"] != "source" and o.get("vs_previous"):
            rows.append(_row("", st["previous"], o["vs_previous"], "introduced here" if st.get("introduced") else ""))
        if "reference_kernels" in o:
            drift = o.get("drift")
            rows.append(_row("", "source", o["reference_kernels"], "(reference kernels)"))
            if drift:
                rows.append(_row("", "delegate", drift, "(reference kernels vs delegate: drift)"))
    ref = st.get("reference_kernels")
    if ref and ref.get("error"):
        rows.append(["", f"reference kernels: ERROR: {ref['error']}"])
    return rows


def render_ledger(p: dict) -> list[str]:
    """The ledger's lines: header, one row per stage/output/comparison, findings, localization."""
    if not p.get("stages"):
        return [f"parity: {p.get('note') or p.get('inputs', '')}"]
    lines = [f"parity ({p.get('inputs', '')}):"]
    if p.get("synthetic"):
        lines.append("  !! synthetic validation data: these numbers say nothing about real inputs")
    multi = max(len(st.get("outputs", [])) for st in p["stages"]) > 1
    rows = [list(COLUMNS)]
    for st in p["stages"]:
        rows.extend(_stage_rows(st, multi))
    lines.extend(align(rows, right=_NUMERIC))
    for f in p.get("findings", []):
        lines.append(f"  * {f}")
    for loc in p.get("localization") or []:
        name = loc.get("stage", "")
        for w in (loc.get("worst") or [])[:3]:
            lines.append(f"    {name} worst layer: #{w['index']} {w['op']} snr {w['snr_db']:.1f} dB cos "
                         f"{w['cosine']:.4f} '{w['tensor'][:70]}'")
    return lines
