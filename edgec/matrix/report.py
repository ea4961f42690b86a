"""The matrix report: ``OUT/matrix.json`` (the record), ``matrix.md`` and ``matrix.html`` (the same
models x targets grid), the merge of shard outputs, and the gate against a baseline matrix.

The gate reuses ``edgec.bench.gate.compare`` cell by cell and variant by variant (noise-aware p50
bound). A gate that measured nothing does not pass: its verdict is "nothing measured".
"""

from __future__ import annotations

import json
import os
import shutil
import time
from html import escape
from pathlib import Path

from edgec.environment import __version__
from edgec.errors import InputError, UsageError

SCHEMA = "edgec.matrix/1"


def matrix_record(project, run: dict, opts) -> dict:
    return {"schema": SCHEMA, "edgec_version": __version__, "created": time.strftime("%Y-%m-%dT%H:%M:%SZ", time.gmtime()),
            "project": str(project.path), "models": list(project.models), "targets": list(project.targets),
            "shard": f"{opts.shard[0]}/{opts.shard[1]}" if opts.shard else None, "jobs": run["jobs"],
            "seconds": run["seconds"], "groups": run["groups"], "cells": run["cells"],
            "distinct_steps": _distinct(run["cells"])}


def _distinct(cells: list[dict]) -> dict:
    keys = {k for c in cells for k in c.get("step_keys", [])}
    computed = [k for c in cells for k in c.get("computed_keys", [])]
    return {"distinct": len(keys), "computed": len(computed), "computed_distinct": len(set(computed))}


def gate(record: dict, baseline_path: str | None, fail_on: str = "p50:+10%") -> dict | None:
    if not baseline_path:
        return None
    from edgec.bench.gate import compare

    base = load_matrix(baseline_path)
    base_cells = {c["cell"]: c for c in base.get("cells", [])}
    rows = []
    for c in record["cells"]:
        b = base_cells.get(c["cell"])
        for v, cur in (c.get("variants") or {}).items():
            bv = (b or {}).get("variants", {}).get(v)
            if not bv:
                continue
            g = compare(dict(bv, available=bv.get("p50_ms") is not None), dict(cur, available=cur.get("p50_ms") is not None),
                        fail_on)
            rows.append({"cell": c["cell"], "variant": v, **{k: g.get(k) for k in
                         ("verdict", "ok", "baseline_ms", "current_ms", "change_pct", "bound_ms")}})
    measured = [r for r in rows if r["verdict"] not in ("skipped", "unmeasured")]  # the matrix's own rule below
    if not measured:
        verdict, ok = "nothing measured", False
    elif all(r["ok"] for r in measured):
        verdict, ok = "pass", True
    else:
        verdict, ok = "regression", False
    return {"baseline": str(baseline_path), "fail_on": fail_on, "verdict": verdict, "ok": ok,
            "measured": len(measured), "rows": rows}


def load_matrix(path: str | Path) -> dict:
    p = Path(path)
    if p.is_dir():
        p = p / "matrix.json"
    try:
        data = json.loads(p.read_text())
    except FileNotFoundError:
        raise InputError("no matrix.json here (not an edgec matrix output)", where=str(p)) from None
    except ValueError as exc:
        raise InputError(f"matrix.json is not JSON ({exc})", where=str(p)) from None
    if data.get("schema") != SCHEMA:
        raise InputError(f"not an edgec matrix record (schema {data.get('schema')!r})", where=str(p))
    return data


def merge(outs: list[str], dest: str | Path) -> dict:
    """Merge shard outputs: their cells (a cell in two shards is an error) and build directories."""
    if not outs:
        raise UsageError("`edgec matrix merge` needs the shard outputs", hint="edgec matrix merge OUT1 OUT2 -o OUT")
    dest = Path(dest)
    records = [(Path(o), load_matrix(o)) for o in outs]
    cells, seen = [], {}
    for o, r in records:
        for c in r["cells"]:
            if c["cell"] in seen:
                raise InputError(f"cell {c['cell']} is in two shard outputs ({seen[c['cell']]} and {o})", where=str(o),
                                 hint="each shard must run its own slice (--shard I/N)")
            seen[c["cell"]] = o
            cells.append(c)
            src, dst = o / c["dir"], dest / c["dir"]
            if src.is_dir() and src.resolve() != dst.resolve():
                dest.mkdir(parents=True, exist_ok=True)
                tmp = dest / f".{c['dir']}.merge"
                shutil.rmtree(tmp, ignore_errors=True)
                shutil.copytree(src, tmp)
                from edgec.fsio import replace_path

                replace_path(tmp, dst)
    first = records[0][1]
    order = {(m, t): i for i, (m, t) in enumerate((m, t) for m in first["models"] for t in first["targets"])}
    cells.sort(key=lambda c: order.get((c["model"], c["target"]), len(order)))
    merged = dict(first, cells=cells, shard=None, merged_from=[str(o) for o, _ in records],
                  seconds=round(sum(r.get("seconds", 0) for _, r in records), 3),
                  groups={k: v for _, r in records for k, v in r.get("groups", {}).items()},
                  distinct_steps=_distinct(cells))
    merged.pop("gate", None)
    return merged


def write_matrix(record: dict, out: Path) -> list[Path]:
    out.mkdir(parents=True, exist_ok=True)
    paths = []
    for name, text in (("matrix.json", json.dumps(record, indent=2, default=str)),
                       ("matrix.md", render_markdown(record)), ("matrix.html", render_html(record))):
        p = out / name
        tmp = out / f".{name}.tmp"
        tmp.write_text(text, encoding="utf-8")
        os.replace(tmp, p)
        paths.append(p)
    return paths


def _ms(v) -> str:
    return "–" if v is None else f"{v:.3g}"


def _pct(v) -> str:
    return "–" if v is None else f"{v:+.1f}%"


def _kib(b) -> str:
    return "–" if b is None else f"{b / 1024:.1f} KiB"


def _cell_lines(c: dict | None) -> list[str]:
    if c is None:
        return ["(not in this run)"]
    if not c["ok"] and not c.get("variants"):
        return [f"FAILED (exit {c['exit_code']}): {c.get('error') or ''}"]
    lines = [] if c["ok"] else [f"FAILED (exit {c['exit_code']}): {c.get('error') or ''}"]
    for v, r in c["variants"].items():
        par = {True: "parity ok", False: "parity MISS", None: "parity –"}[r.get("parity_ok")]
        lines.append(f"{v}: {par}, p50 {_ms(r.get('p50_ms'))} ms here / ≈{_ms(r.get('estimate_p50_ms'))} ms est., "
                     f"{_kib(r.get('bytes'))}")
    return lines


def _grid(record: dict) -> dict:
    return {(c["model"], c["target"]): c for c in record["cells"]}


def _gate_line(g: dict | None) -> str:
    if not g:
        return "No baseline given (--baseline OLD/matrix.json): no gate."
    return (f"Gate vs `{g['baseline']}` ({g['fail_on']}): **{g['verdict']}** "
            f"({g['measured']} variant(s) measured against the baseline)")


def render_markdown(record: dict) -> str:
    grid = _grid(record)
    failed = [c for c in record["cells"] if not c["ok"]]
    d = record.get("distinct_steps", {})
    lines = [f"# edgec matrix: {len(record['models'])} model(s) × {len(record['targets'])} target(s)", "",
             f"{len(record['cells'])} cell(s), {len(failed)} failed; {d.get('distinct', 0)} distinct steps, "
             f"{d.get('computed', 0)} computed in this run; {record.get('seconds', 0):.1f} s with {record.get('jobs')} job(s)"
             + (f"; shard {record['shard']}" if record.get("shard") else ""), "",
             _gate_line(record.get("gate")), "",
             "| model | " + " | ".join(record["targets"]) + " |", "|---|" + "---|" * len(record["targets"])]
    for m in record["models"]:
        row = []
        for t in record["targets"]:
            c = grid.get((m, t))
            text = "<br>".join(_cell_lines(c)).replace("|", "\\|")
            row.append(f"[{m}@{t}]({c['report']})<br>{text}" if c and c.get("report") else text)
        lines.append(f"| {m} | " + " | ".join(row) + " |")
    if failed:
        lines += ["", "## Failures", ""] + [f"- `{c['cell']}` (exit {c['exit_code']}): {c.get('error')}" for c in failed]
    g = record.get("gate")
    if g and g["rows"]:
        lines += ["", "## Gate", "", "| cell | variant | baseline ms | current ms | change | verdict |",
                  "|---|---|---|---|---|---|"]
        lines += [f"| {r['cell']} | {r['variant']} | {_ms(r.get('baseline_ms'))} | {_ms(r.get('current_ms'))} | "
                  f"{_pct(r.get('change_pct'))} | {r['verdict']} |"
                  for r in g["rows"]]
    return "\n".join(lines) + "\n"


def render_html(record: dict) -> str:
    grid = _grid(record)
    head = "".join(f"<th>{escape(t)}</th>" for t in record["targets"])
    body = []
    for m in record["models"]:
        tds = []
        for t in record["targets"]:
            c = grid.get((m, t))
            cls = "none" if c is None else "ok" if c["ok"] else "fail"
            link = f'<a href="{escape(c["report"])}">{escape(m)}@{escape(t)}</a><br>' if c and c.get("report") else ""
            items = "".join(f"<li>{escape(x)}</li>" for x in _cell_lines(c))
            tds.append(f'<td class="{cls}" data-cell="{escape(m)}@{escape(t)}">{link}<ul>{items}</ul></td>')
        body.append(f"<tr><th>{escape(m)}</th>{''.join(tds)}</tr>")
    g = record.get("gate")
    gate = escape(_gate_line(g).replace("**", ""))
    d = record.get("distinct_steps", {})
    return f"""<!doctype html>
<html lang="en"><head><meta charset="utf-8"><title>edgec matrix</title>
<style>
body {{ font: 14px system-ui, sans-serif; margin: 2em; color: #222; }}
table {{ border-collapse: collapse; }} th, td {{ border: 1px solid #ccc; padding: .5em; vertical-align: top; }}
td.ok {{ background: #eefbee; }} td.fail {{ background: #fdeaea; }} td.none {{ background: #f4f4f4; }}
ul {{ margin: .3em 0; padding-left: 1.2em; }}
</style></head><body>
<h1>edgec matrix: {len(record['models'])} model(s) × {len(record['targets'])} target(s)</h1>
<p id="summary">{len(record['cells'])} cell(s), {sum(not c['ok'] for c in record['cells'])} failed;
{d.get('distinct', 0)} distinct steps, {d.get('computed', 0)} computed in this run.</p>
<p id="gate">{gate}</p>
<table id="matrix"><thead><tr><th>model</th>{head}</tr></thead><tbody>
{''.join(body)}
</tbody></table>
</body></html>
"""
