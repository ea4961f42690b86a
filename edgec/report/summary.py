"""The human summary printed after a build (the manifest is the machine-readable record)."""

from __future__ import annotations

from pathlib import Path

from edgec.validate.table import align, render_ledger


def _fmt_bytes(n: int) -> str:
    for unit in ("B", "KB", "MB", "GB"):
        if n < 1024 or unit == "GB":
            return f"{n:.0f} {unit}" if unit == "B" else f"{n:.1f} {unit}"
        n /= 1024
    return str(n)


def render_summary(m: dict, out: Path) -> str:
    t = m["target"]
    lines = [f"edgec {m['edgec_version']}: {m['source']['path'] or m['source']['factory']} -> {t['name']} "
             f"({t['device']['name']}, {t['runtime']['name']}/{t['runtime']['delegate']})",
             f"route: {' -> '.join(m['route'])}"]
    lines.extend(route_lines(m.get("route_search")))
    lines.extend(canonical_lines(m.get("steps") or []))
    lines.extend(step_lines(m["steps"]))
    lines.extend(io_lines(m.get("tflite_io", {})))
    lines.append("artifacts:")
    lines.extend(align([[a["path"], a["format"], _fmt_bytes(a["bytes"]), f"sha256 {a['sha256'][:12]}"]
                        for a in m["artifacts"]], right=(2,)))
    for s in m.get("skipped_variants", []):
        lines.append(f"  {s['variant']} left out: {s['reason']}")
    p = m["parity"]
    cal = m.get("calibration")
    if cal:
        lines.append(f"calibration: {cal['samples']} samples from {cal['source']}"
                     f"{' (SYNTHETIC: random data)' if cal.get('synthetic') else ''}")
    lines.extend(render_ledger(p))
    lines.extend(_bench_lines(m))
    if m.get("bundle"):
        bun = m["bundle"]
        lines.append(f"bundle ({bun['task']}): {out}/{bun['path']}/ and {out}/{bun['zip']}: {', '.join(bun['models'])}"
                     f"{'' if bun['checks_ok'] else ' (a bundle check FAILED: see bundle/manifest.json)'}")
    lines.append(f"{'OK' if p.get('ok', True) else 'PARITY MISS'}: wrote {out}/manifest.json")
    return "\n".join(lines)


def step_lines(steps: list[dict]) -> list[str]:
    """The step table: name [variant], seconds (or cached), the step's main tool."""
    rows = []
    for s in steps:
        tool = ", ".join(f"{k} {v}" for k, v in list((s.get("tools") or {}).items())[:1])
        rows.append([s["name"] + (f" [{s['variant']}]" if s.get("variant") else ""),
                     "cached" if s.get("cached") else f"{s['seconds']:.1f}s", tool])
    return align(rows, right=(1,))


def io_lines(io: dict) -> list[str]:
    """The TFLite model's inputs and outputs beside the source's (shape, dtype, layout)."""
    rows = [[kind[:-1], f"{r['source']}:", str(r["source_shape"]), "-> tflite", str(r["shape"]), str(r["dtype"]),
             f"({r['layout']})" if r.get("layout") else ""]
            for kind in ("inputs", "outputs") for r in io.get(kind, [])]
    return align(rows)


def canonical_lines(steps: list[dict]) -> list[str]:
    """The canonicalization pass's rewrites, each with its node counts."""
    rec = next((s.get("canonicalization") for s in steps if s.get("name") == "onnx_canonicalize"), None)
    if not rec:
        return []
    done = "; ".join(f"{r['rewrite']}{' (' + str(r['detail']) + ')' if r.get('detail') else ''} "
                     f"{r['nodes_before']}->{r['nodes_after']} nodes" for r in rec.get("rewrites") or [])
    return [f"canonicalization: {done or 'nothing to change'}"]


def route_lines(rs: dict | None) -> list[str]:
    """One line per route attempt (and why the route was chosen)."""
    if not rs:
        return []
    attempts = rs.get("attempts") or []
    lines = [f"route search: {rs.get('reason', '')}"] if len(attempts) != 1 else []
    for i, a in enumerate(attempts, 1):
        opts = ", ".join(f"{k}={v}" for k, v in (a.get("options") or {}).items())
        when = "cached" if a.get("cached") else f"{a.get('seconds', 0):.1f}s"
        lines.append(f"  attempt {i}: {' -> '.join(a['route'])}{' [' + opts + ']' if opts else ''}  "
                     f"{'ok' if a['ok'] else 'FAILED'} ({when}): {a['reason']}")
    return lines


def _bench_lines(m: dict) -> list[str]:
    """Measured latency here, the estimate on the target device (labelled), and runtime compatibility."""
    bench = m.get("bench") or {}
    if not isinstance(bench, dict) or not bench:
        return []
    first = next(iter(bench.values()))
    cond = first.get("conditions") or {}
    est_dev = next((b["estimate"].get("device") for b in bench.values() if (b.get("estimate") or {}).get("device")), "")
    lines = [f"latency (measured here: {cond.get('threads', '?')} thread(s), {cond.get('delegate', '')}; "
             f"estimated on {est_dev or 'the target'}):"]
    rows = [["variant", "p50 ms", "p90 ms", "runs", "", "estimated p50 ms (band)", "runtime check"]]
    for v, b in bench.items():
        if not b.get("available", True) or b.get("p50_ms") is None:
            rows.append([v, f"not measured: {b.get('reason', 'unavailable')}"])
            continue
        est = b.get("estimate") or {}
        est_txt = (f"{est['p50_ms']:.1f} ({est['low_ms']:.1f}-{est['high_ms']:.1f})"
                   if est.get("available") and est.get("p50_ms") is not None else "n/a")
        rows.append([v, _ms(b["p50_ms"]), _ms(b.get("p90_ms")), str(b.get("runs")), "cached" if b.get("cached") else "",
                     est_txt, _compat_text(b.get("compat") or {})])
        d = b.get("device")
        if d:  # --device: measured on the board, beside the estimate
            c = d.get("conditions") or {}
            rows.append(["", f"MEASURED on {d.get('measured_on')}: " +
                         (f"p50 {_ms(d.get('p50_ms'))} ms  p90 {_ms(d.get('p90_ms'))} ms  ({d.get('runs')} runs, "
                          f"{c.get('runtime')} {c.get('runtime_version')})"
                          if d.get("available") else f"not measured: {d.get('reason')}")])
    lines.extend(align(rows, right=(1, 2, 3)))
    lines.extend(slower_lines(bench))
    return lines


def _compat_text(compat: dict) -> str:
    if not compat or not compat.get("checked", True):
        return ""
    if compat.get("ok", True):
        return "ok" if compat.get("checked") else ""
    why = ", ".join(f"{x['op']} v{x['version']} (needs {x['needs']})" if isinstance(x, dict) else str(x)
                    for x in (compat.get("too_new") or [])[:4])
    why = why or (compat.get("load") or {}).get("error", "it does not load")
    return f"INCOMPATIBLE with {compat.get('on_device', 'the on-device runtime')}: {why}"


def _ms(x) -> str:
    return "n/a" if x is None else f"{x:.2f}" if x >= 1 else f"{x:.3g}"


def slower_lines(bench: dict) -> list[str]:
    """A line for every variant measurably slower than fp32, here and on a --device board."""
    from edgec.bench.gate import slower_than_reference

    lines = []
    for s in slower_than_reference(bench):
        lines.append(f"  ! {s['variant']} is {s['ratio']:.1f}x slower than fp32 {s['where']} "
                     f"(p50 {_ms(s['p50_ms'])} vs {_ms(s['reference_p50_ms'])} ms)")
    return lines
