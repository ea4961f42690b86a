"""The parity ledger as a text table (the manifest's ``parity`` holds the same numbers)."""

from __future__ import annotations

import math

HEADER = (f"  {'stage':<20} {'vs':<14} {'max_abs':>9} {'mean_abs':>9} {'max_rel':>9} {'cosine':>9} "
          f"{'cos min':>9} {'SNR dB':>7} {'top1':>6} {'top1 p≥.5':>9} {'top5':>6}  verdict")


def _num(v, fmt: str = ".2e") -> str:
    if v is None:
        return "-"
    if isinstance(v, float) and math.isinf(v):
        return "inf" if v > 0 else "-inf"
    return format(v, fmt)


def _row(stage: str, vs: str, m: dict | None, verdict: str = "") -> str:
    if not m:
        return f"  {stage:<20} {vs:<14} {'-':>9}  {verdict}".rstrip()
    return (f"  {stage:<20} {vs:<14} {_num(m.get('max_abs')):>9} {_num(m.get('mean_abs')):>9} "
            f"{_num(m.get('max_rel')):>9} {_num(m.get('cosine'), '.6f'):>9} {_num(m.get('cosine_min'), '.6f'):>9} "
            f"{_num(m.get('snr_db'), '.1f'):>7} {_num(m.get('top1'), '.3f'):>6} "
            f"{_num(m.get('top1_confident'), '.3f'):>9} {_num(m.get('top5'), '.3f'):>6}  {verdict}").rstrip()


def _budget(b: dict) -> str:
    return ", ".join(f"{k} {v:g}" for k, v in b.items())


def _stage_lines(st: dict, multi: bool) -> list[str]:
    name = st["stage"]
    if st.get("error"):
        return [_row(name, "source", None, f"ERROR: {st['error']}")]
    lines = []
    for o in st["outputs"]:
        label = f"{name}" + (f"[{o['output'][:10]}]" if multi else "")
        verdict = "ok" if o["ok"] else "MISS: " + "; ".join(o["misses"])
        lines.append(_row(label, "source", o, f"{verdict} ({_budget(st['budget'])})"))
        if st["previous"] != "source" and o.get("vs_previous"):
            lines.append(_row("", st["previous"][:14], o["vs_previous"],
                              "introduced here" if st.get("introduced") else ""))
        if "reference_kernels" in o:
            drift = o.get("drift")
            lines.append(_row("", "source", o["reference_kernels"], "(reference kernels)"))
            if drift:
                lines.append(_row("", "delegate", drift, "(reference kernels vs delegate: drift)"))
    ref = st.get("reference_kernels")
    if ref and ref.get("error"):
        lines.append(f"  {'':<20} reference kernels: ERROR: {ref['error']}")
    return lines


def render_ledger(p: dict) -> list[str]:
    """The ledger's lines: header, one row per stage/output/comparison, findings, localization."""
    if not p.get("stages"):
        return [f"parity: {p.get('note') or p.get('inputs', '')}"]
    lines = [f"parity ({p.get('inputs', '')}):"]
    if p.get("synthetic"):
        lines.append("  !! synthetic validation data: these numbers say nothing about real inputs")
    lines.append(HEADER)
    multi = max(len(st.get("outputs", [])) for st in p["stages"]) > 1
    for st in p["stages"]:
        lines.extend(_stage_lines(st, multi))
    for f in p.get("findings", []):
        lines.append(f"  * {f}")
    for loc in p.get("localization") or []:
        name = loc.get("stage", "")
        for w in (loc.get("worst") or [])[:3]:
            lines.append(f"    {name} worst layer: #{w['index']} {w['op']} snr {w['snr_db']:.1f} dB cos "
                         f"{w['cosine']:.4f} '{w['tensor'][:70]}'")
    return lines
