"""The human text of a bench record. Measured and estimated numbers are printed apart, the estimate
always under the word ESTIMATED."""

from __future__ import annotations


def _ms(v) -> str:
    return "n/a" if v is None else f"{v:.3f}"


def _on_device(r: dict) -> list[str]:
    """A record measured on a real device (ssh or adb): its facts, and the numbers it has."""
    c, m = r["conditions"], r["conditions"]["machine"]
    temps = lambda t: ", ".join(f"{k} {v} C" for k, v in (t or {}).items()) or "none exposed"  # noqa: E731
    lines = [f"MEASURED ON THE DEVICE {r['measured_on']} ({m.get('model') or m.get('cpu')}, {m.get('cores')} cores, "
             f"governor {m.get('governor') or 'not exposed'}, load {m.get('load_avg_1_5_15')}):",
             f"  {c['runtime']} {c.get('runtime_version') or ''}, delegate {c['delegate']}, {c['threads']} thread(s) "
             f"({c['threads_from']})",
             f"  p50 {_ms(r['p50_ms'])} ms   p90 {_ms(r['p90_ms'])}   p99 {_ms(r['p99_ms'])}   mean {_ms(r['mean_ms'])} "
             f"± {_ms(r['std_ms'])}   min {_ms(r['min_ms'])}   ({r['runs']} runs; inputs: {c['input_source']})",
             f"  temperature before: {temps(m.get('thermal_before_c'))}; after: {temps(m.get('thermal_after_c'))}",
             f"  peak memory {r.get('memory', {}).get('peak_rss_mb')} MB ({r.get('memory', {}).get('method')})"]
    return lines + [f"  note: {n}" for n in c.get("notes", [])]


def _measured(r: dict) -> list[str]:
    if not r.get("available", True):
        return [f"  not measured: {r.get('reason')}"]
    if r.get("measured_on"):
        return _on_device(r)
    c, m = r["conditions"], r["conditions"]["machine"]
    mem = r.get("memory", {})
    return [
        f"measured here ({m.get('cpu')}, {m.get('cores')} cores, load {m.get('load_avg_1_5_15')}):",
        f"  {c['runtime']} {c['runtime_version']}, delegate {c['delegate']}, {c['threads']} thread(s) ({c['threads_from']})",
        f"  p50 {r['p50_ms']:.3f} ms   p90 {r['p90_ms']:.3f}   p99 {r['p99_ms']:.3f}   mean {r['mean_ms']:.3f} "
        f"± {r['std_ms']:.3f} (CV {100 * (r['cv'] or 0):.1f}%)   min {r['min_ms']:.3f}",
        f"  {r['runs']} runs in {r['duration_s']:.1f} s after a {r['warmup']['seconds']:.1f} s warm-up "
        f"({r['warmup']['runs']} runs); inputs: {c['input_source']}",
        f"  peak memory {mem.get('peak_rss_mb')} MB (+{mem.get('increase_mb')} MB for the model)",
        *[f"  note: {n}" for n in c.get("notes", [])],
    ]


def _estimate(e: dict) -> list[str]:
    if not e.get("available"):
        return [f"ESTIMATED on {e.get('device')}: not available ({e.get('reason')})"]
    refs = "; ".join(f"{x['model']} {x['precision']} {x['published_ms']} ms ({x['source']})" for x in e["references"])
    lines = [f"ESTIMATED on {e['device']} ({e['runtime']}{', %s threads' % e['threads'] if e.get('threads') else ''}, "
             f"{e['precision_basis']} basis): p50 ~ {e['p50_ms']} ms, band {e['low_ms']}-{e['high_ms']} ms",
             f"  from a cost model ({e['features']['macs_millions']} M MACs, {e['features']['mbytes_moved']} MB moved) "
             f"fitted on published numbers; band: {e['band']}",
             f"  this device's references: {refs}"]
    return lines + [f"  note: {n}" for n in e.get("notes", [])]


def _compat(c: dict) -> list[str]:
    if not c.get("checked"):
        return [f"runtime compatibility: not checked ({c.get('reason', 'no runtime version or loader')})"]
    head = f"runtime compatibility with {c['on_device']}: {'OK' if c['ok'] else 'INCOMPATIBLE'}"
    lines = [head]
    for t in c.get("too_new", []):
        lines.append(f"  {t['op']} v{t['version']} needs TFLite >= {t['needs']} ({t['count']} op(s), e.g. {t['nodes'][0]})")
    for t in c.get("unknown", []):
        lines.append(f"  {t['op']} v{t['version']}: {t['why']}")
    ld = c.get("load")
    if ld:
        if ld.get("attempted"):
            lines.append(f"  loaded with {ld['package']} {ld.get('version') or ''} {'on ' + ld['where'] if ld.get('where') else 'here'}: "
                         f"{'ok' if ld['loaded'] else 'FAILED: ' + ld.get('error', '')}")
        else:
            lines.append(f"  not loaded here: {ld['reason']}")
    return lines


def _coverage(c: dict) -> list[str]:
    by = ", ".join(f"{k} x{v}" for k, v in c["ops_on_cpu_by_type"].items())
    return [f"{c['delegate']} delegate (static): {c['ops_on_cpu']} of {c['ops_total']} ops stay on the CPU "
            f"({100 * c['share_ops_on_cpu']:.1f}% of ops, {100 * c['share_macs_on_cpu']:.1f}% of MACs), "
            f"{c['delegated_partitions']} delegated partition(s){': ' + by if by else ''}"]


def render(r: dict) -> str:
    lines = [f"edgec bench {r['artifact']} [{r.get('variant')}] -> {r['target']}",
             f"  size {r['size_bytes'] / 1e6:.2f} MB (gzip {r['gzip_bytes'] / 1e6:.2f} MB)"]
    lines += _measured(r)
    if r.get("estimate"):
        lines += _estimate(r["estimate"])
    if r.get("delegate_coverage"):
        lines += _coverage(r["delegate_coverage"])
    if r.get("compat"):
        lines += _compat(r["compat"])
    for k, b in r.get("budgets", {}).items():
        if k == "size":
            lines.append(f"budget size: {b['size_mb']} MB <= {b['budget_mb']} MB: {'ok' if b['ok'] else 'OVER'}")
        else:
            if b["ok"] is None:
                lines.append(f"budget latency {b['budget_ms']} ms: not checked ({b['basis']})")
            else:
                lines.append(f"budget latency ({b['basis']}): {b['value_ms']} ms <= {b['budget_ms']} ms: "
                             f"{'ok' if b['ok'] else 'OVER'}")
    g = r.get("gate")
    if g and g.get("verdict") == "unmeasured":  # either side has no measurement (edgec/bench/gate.py)
        lines.append(f"gate {g['metric']}:+{g['tolerance_pct']:g}%: UNMEASURED -> "
                     f"{'allowed (--allow-unmeasured)' if g.get('allowed') else 'FAILS'}: {g['reason']}")
    elif g and g.get("verdict") != "skipped":
        lines.append(f"gate {g['metric']}:+{g['tolerance_pct']:g}%: baseline {g['baseline_ms']:.3f} ms, now "
                     f"{g['current_ms']:.3f} ms ({g['change_pct']:+.1f}%), bound {g['bound_ms']:.3f} ms "
                     f"(noise margin {g['noise_margin_ms']:.3f}) -> {g['verdict'].upper()}")
        lines += [f"  differs from the baseline: {d}" for d in g["differences"]]
    return "\n".join(lines)
