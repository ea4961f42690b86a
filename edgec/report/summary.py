"""The human summary printed after a build (the manifest is the machine-readable record)."""

from __future__ import annotations

from pathlib import Path


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
    names = [s["name"] + (f" [{s['variant']}]" if s.get("variant") else "") for s in m["steps"]]
    width = max((len(n) for n in names), default=0)
    for name, s in zip(names, m["steps"]):
        when = "cached" if s["cached"] else f"{s['seconds']:.1f}s"
        tool = ", ".join(f"{k} {v}" for k, v in list(s["tools"].items())[:1])
        lines.append(f"  {name:<{width}}  {when:>8}   {tool}")
    io = m.get("tflite_io", {})
    for kind in ("inputs", "outputs"):
        for r in io.get(kind, []):
            lines.append(f"  {kind[:-1]:6} {r['source']}: {r['source_shape']} -> tflite {r['shape']} {r['dtype']}"
                         f"{' (' + r['layout'] + ')' if r.get('layout') else ''}")
    lines.append("artifacts:")
    for a in m["artifacts"]:
        lines.append(f"  {a['path']:<28} {a['format']:<12} {_fmt_bytes(a['bytes']):>10}  sha256 {a['sha256'][:12]}")
    for s in m.get("skipped_variants", []):
        lines.append(f"  (skipped {s['variant']}: {s['reason']})")
    p = m["parity"]
    cal = m.get("calibration")
    if cal:
        lines.append(f"calibration: {cal['samples']} samples from {cal['source']}"
                     f"{' (SYNTHETIC: random data)' if cal.get('synthetic') else ''}")
    from edgec.validate.table import render_ledger

    lines.extend(render_ledger(p))
    lines.extend(_bench_lines(m))
    if m.get("bundle"):
        bun = m["bundle"]
        lines.append(f"bundle ({bun['task']}): {out}/{bun['path']}/ and {out}/{bun['zip']}: {', '.join(bun['models'])}"
                     f"{'' if bun['checks_ok'] else ' (a bundle check FAILED: see bundle/manifest.json)'}")
    lines.append(f"{'OK' if p.get('ok', True) else 'PARITY MISS'}: wrote {out}/manifest.json")
    return "\n".join(lines)


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
    for v, b in bench.items():
        if not b.get("available", True) or b.get("p50_ms") is None:
            lines.append(f"  {v:<14} not measured: {b.get('reason', 'unavailable')}")
            continue
        est = b.get("estimate") or {}
        est_txt = (f"estimated {est['p50_ms']:.1f} ms ({est['low_ms']:.1f}-{est['high_ms']:.1f})"
                   if est.get("available") and est.get("p50_ms") is not None else "estimate n/a")
        compat = b.get("compat") or {}
        bad = compat.get("too_new") or []
        compat_txt = "" if compat.get("ok", True) else \
            f"  INCOMPATIBLE with {compat.get('on_device', 'the on-device runtime')}: " + \
            ", ".join(f"{x['op']} v{x['version']} (needs {x['needs']})" if isinstance(x, dict) else str(x)
                      for x in bad[:4])
        lines.append(f"  {v:<14} p50 {b['p50_ms']:.2f} ms  p90 {b['p90_ms']:.2f} ms  "
                     f"({b.get('runs')} runs{', cached' if b.get('cached') else ''})  {est_txt}{compat_txt}")
        d = b.get("device")
        if d:  # --device: measured on the board, beside the estimate
            f = lambda x: "n/a" if x is None else f"{x:.2f}"  # noqa: E731
            lines.append(f"  {'':<14} MEASURED on {d.get('measured_on')}: " +
                         (f"p50 {f(d.get('p50_ms'))} ms  p90 {f(d.get('p90_ms'))} ms  ({d.get('runs')} runs, "
                          f"{(d.get('conditions') or {}).get('runtime')} {(d.get('conditions') or {}).get('runtime_version')})"
                          if d.get("available") else f"not measured: {d.get('reason')}"))
    return lines
