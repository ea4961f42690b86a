"""One matrix cell, summarized from its build's manifest: variants, parity verdict, p50 measured and
estimated, size, how many steps were computed and how many came from the cache."""

from __future__ import annotations

import json
from pathlib import Path

from edgec.matrix.project import Cell


def summarize_cell(cell: Cell, out: Path, code: int, error: str | None, seconds: float) -> dict:
    res = {"cell": cell.name, "model": cell.model, "target": cell.target, "exit_code": code, "ok": code == 0,
           "error": error, "seconds": seconds, "dir": cell.name, "report": None, "variants": {},
           "parity_ok": None, "steps": {"computed": 0, "cached": 0}, "step_keys": [], "computed_keys": []}
    mpath = out / cell.name / "manifest.json"
    if code not in (0, 8) or not mpath.is_file():  # 8: a parity miss still writes the build and its ledger
        return res
    try:
        m = json.loads(mpath.read_text())
    except ValueError:
        return res
    res["report"] = f"{cell.name}/report.html"
    res["parity_ok"] = bool(m.get("parity", {}).get("ok", True))
    stages = {s.get("variant"): s.get("ok") for s in m.get("parity", {}).get("stages", [])
              if str(s.get("stage", "")).startswith("tflite:")}
    bench = m.get("bench") or {}
    for a in m.get("artifacts", []):
        if a.get("format") != "tflite":
            continue
        v = a.get("variant")
        b = bench.get(v) or {}
        est = b.get("estimate") or {}
        res["variants"][v] = {"bytes": a.get("bytes"), "sha256": a.get("sha256"), "parity_ok": stages.get(v),
                              "p50_ms": b.get("p50_ms") if b.get("available", True) else None,
                              "p50_se_ms": b.get("p50_se_ms"), "samples_ms": b.get("samples_ms"),
                              "estimate_p50_ms": est.get("p50_ms"), "estimate_device": est.get("device")}
    for st in m.get("steps", []):
        res["steps"]["cached" if st.get("cached") else "computed"] += 1
        res["step_keys"].append(st.get("cache_key"))
        if not st.get("cached"):
            res["computed_keys"].append(st.get("cache_key"))
    res["export"] = [{"name": st["name"], "cached": st.get("cached")} for st in m.get("steps", [])
                     if st.get("to") == "onnx" and str(st.get("from", "")).startswith(("torch", "exported"))]
    return res
