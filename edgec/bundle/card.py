"""MODEL_CARD.md: what the bundle is, how it was built, its numbers and its limits, all taken from
the bundle manifest (nothing here is typed by hand)."""

from __future__ import annotations


def _fmt(v, digits: int = 6) -> str:
    if v is None:
        return "-"
    if isinstance(v, float):
        return f"{v:.{digits}g}"
    return str(v)


def _shape(row: dict) -> str:
    q = row.get("quantization")
    qs = f", scale {q['scale']:.6g}, zero point {q['zero_point']}" if q else ""
    return f"`{row['name']}` {row['dtype']} [{', '.join(map(str, row['shape']))}]{qs}"


def _models(bm: dict) -> list[str]:
    lines = ["| file | variant | bytes | input | output | bundle check | build parity | p50 (this machine) |",
             "|---|---|---|---|---|---|---|---|"]
    for m in bm["models"]:
        par = m.get("parity") or {}
        out0 = (par.get("outputs") or [{}])[0]
        parity = "-" if not par else (f"{'ok' if par.get('ok') else 'MISSED'}: cosine {_fmt(out0.get('cosine'))}"
                                      + (f", top-1 {_fmt(out0.get('top1'), 3)}" if out0.get("top1") is not None else ""))
        chk = m["check"]
        c0 = chk["outputs"][0]
        check = f"{'ok' if chk['ok'] else 'FAILED'}: max abs {_fmt(c0.get('max_abs'), 3)}, cosine {_fmt(c0.get('cosine'))}"
        bench = m.get("bench") or {}
        p50 = f"{bench['p50_ms']:.2f} ms" if isinstance(bench.get("p50_ms"), (int, float)) else "-"
        ins = "; ".join(_shape(r) for r in m["inputs"])
        outs = "; ".join(_shape(r) for r in m["outputs"])
        lines.append(f"| `{m['file']}` | {m['variant']} | {m['bytes']:,} | {ins} | {outs} | {check} | "
                     f"{parity} | {p50} |")
    return lines


def _limits(bm: dict) -> list[str]:
    out = []
    norm = bm["normalization"]
    src = norm["source_expects"] or {}
    if norm["folded_into_models"]:
        out.append(f"- The source model's normalization (mean {src['mean']}, std {src['std']} on pixels / 255, "
                   f"from the {src['origin']}) is inside the bundle models: feed them pixels as each model's "
                   "input row says, not normalized values.")
    if src.get("origin") == "default":
        out.append("- The normalization was not given: edgec assumed its default (ImageNet's for 3-channel images). "
                   "If the model was trained otherwise, rebuild with the right mean/std.")
    first = next(iter(m.get("parity") or {} for m in bm["models"]), {}) or {}
    if "synthetic" in str(first.get("inputs") or ""):
        out.append("- The build's parity ledger used synthetic inputs; accuracy on real data was not measured.")
    out.append("- Scores are what the model outputs (no softmax is added); thresholds must be on that scale.")
    out.append("- Latencies were measured on the build machine, not on the target device.")
    return out


def model_card(bm: dict) -> str:
    src = bm.get("source") or {}
    target = bm.get("target") or {}
    tools = bm.get("tools") or {}
    lines = [f"# {bm['name']}", "", bm["description"], "",
             f"- task: {bm['task']}" + (f", {bm['labels']['count']} labels embedded" if bm.get("labels") else ""),
             f"- version: {bm['version'] or '-'}; author: {bm['author'] or '-'}; license: {bm['license'] or '-'}",
             f"- target: {target.get('name')} ({target.get('description', '')})",
             "", "## Files", "", *_models(bm), "",
             "Each `.tflite` carries the official TFLite metadata (read it with `edgec inspect FILE`) and, "
             "for classifiers, its labels: the single file is self-contained. `manifest.json` lists every "
             "file's sha256; `snippets/` has Kotlin for MediaPipe Tasks and the plain Interpreter.", "",
             "## How it was built", "",
             f"- source: {src.get('path') or src.get('factory')} ({src.get('format')}, sha256 {str(src.get('sha256'))[:16]}...)",
             f"- route: {' -> '.join(bm.get('route') or [])}",
             f"- tools: edgec {tools.get('edgec')}, tensorflow {tools.get('tensorflow', '-')}, "
             f"onnx2tf {tools.get('onnx2tf', '-')}, ai-edge-litert {tools.get('ai-edge-litert', '-')}",
             "- bundle check: each model against the build variant it came from, each fed what it expects "
             "(seeded random pixels)", "", "## Limits", "", *_limits(bm), ""]
    return "\n".join(lines)
