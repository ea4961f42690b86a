"""Writing a bundle into a private staging directory: ``bundle/`` (one ``model_<variant>.tflite``
per variant with its metadata inside, ``labels.txt``, ``manifest.json``, ``MODEL_CARD.md``,
``snippets/``) and ``bundle.zip`` (the same files under ``bundle/``, sorted, fixed timestamps).
The caller moves both into place, or removes the staging directory on any error."""

from __future__ import annotations

import hashlib
import json
import time
import zipfile
from pathlib import Path

from edgec.environment import __version__
from edgec.errors import ParityError, UsageError
from edgec.formats import digest
from edgec.formats import tflite_graph as g
from edgec.bundle.options import BundleOptions
from edgec.bundle.plan import ModelPlan, SourceNormalization, plan_models

BUNDLE_SCHEMA = 1
ZIP_DATE = (1980, 1, 1, 0, 0, 0)
BENCH_KEYS = ("p50_ms", "p90_ms", "p99_ms", "mean_ms", "threads", "runtime", "delegate", "machine",
              "estimate", "available", "reason", "cached")


def _io_rows(model, plans: list, kind: str) -> list[dict]:
    """The bundle model's own I/O (after the passes), in subgraph order."""
    sg = model.subgraphs[0]
    rows = []
    for t, idx in zip(plans, sg.inputs if kind == "inputs" else sg.outputs):
        tensor = sg.tensors[int(idx)]
        q = g.tensor_quant(tensor)
        shape = [int(d) for d in tensor.shape]
        rows.append({"name": t.source, "signature_name": t.sig_name, "tensor": g.tensor_name(tensor),
                     "shape": shape, "dtype": g.TYPE_NAMES.get(tensor.type, str(tensor.type)),
                     "layout": t.layout,
                     "quantization": {"scale": q[0], "zero_point": q[1]} if q else None})
    return rows


def write_model(plan: ModelPlan, root: Path, threads: int) -> dict:
    """Fold, dequantize, embed the metadata; write the model; check it against its parent."""
    from edgec.formats.metadata.writer import write_model as embed
    from edgec.passes.input_fold import dequantize_outputs, fold_input_normalization
    from edgec.bundle.check import check_model

    model = g.unpack(plan.parent.read_bytes(), str(plan.parent))
    folds = [fold_input_normalization(model, t.pos, t.mean, t.std, channel_axis=t.channel_axis, dtype=t.fold).to_dict()
             for t in plan.inputs if t.fold]
    dequantized = dequantize_outputs(model) if plan.dequantize_outputs else []
    data = embed(model, plan.meta, {f.name: plan.files[f.name] for f in plan.meta.all_files()})
    path = root / plan.file
    path.write_bytes(data)
    inputs, outputs = _io_rows(model, plan.inputs, "inputs"), _io_rows(model, plan.outputs, "outputs")
    for row, meta in zip(inputs, plan.meta.inputs):
        if meta.content == "image":
            row["expects"] = meta.description
            row["normalization"] = {"mean": list(meta.normalization.mean), "std": list(meta.normalization.std)}
            row["value_range"] = [list(v) for v in meta.value_range]
    check = check_model(plan, path, changed=bool(folds or dequantized), threads=threads)
    return {"variant": plan.variant, "file": plan.file, "task": plan.task, "sha256": digest(path),
            "bytes": path.stat().st_size, "parent_sha256": digest(plan.parent),
            "inputs": inputs, "outputs": outputs, "folded": folds, "dequantized_outputs": dequantized,
            "metadata": plan.meta.to_dict(), "check": check}


def _parity(manifest: dict, variant: str) -> dict | None:
    ledger = manifest.get("parity") or {}
    stage = next((s for s in ledger.get("stages") or [] if s.get("stage") == f"tflite:{variant}"), None)
    if stage is None:
        return None
    outs = [{k: o.get(k) for k in ("output", "max_abs", "cosine", "top1", "ok")} for o in stage.get("outputs") or []]
    return {"ok": stage.get("ok"), "budget": stage.get("budget"), "compared_with": stage.get("compared_with"),
            "inputs": ledger.get("inputs"), "outputs": outs}


def _bench(manifest: dict, variant: str) -> dict | None:
    b = (manifest.get("bench") or {}).get(variant) if isinstance(manifest.get("bench"), dict) else None
    return {k: b[k] for k in BENCH_KEYS if k in b} if isinstance(b, dict) else None


def _normalization(plans: list[ModelPlan], norm: SourceNormalization, records: list[dict]) -> dict:
    """What the source expects of its image input (resolved, pixels / 255 units) and what was folded."""
    image = next((t for t in plans[0].inputs if t.image), None)
    expects = None
    if image is not None:
        expects = {"input": image.source, "mean": [round(v / 255.0, 9) for v in image.mean],
                   "std": [round(v / 255.0, 9) for v in image.std], "units": "pixels / 255, per channel",
                   "origin": norm.origin}
    return {"source_expects": expects, "folded_into_models": any(r["folded"] for r in records)}


def bundle_manifest(manifest: dict, records: list[dict], opts: BundleOptions, normalization: dict,
                    labels: dict | None) -> dict:
    target = manifest.get("target") or {}
    env = manifest.get("environment") or {}
    for r in records:
        r["parity"], r["bench"] = _parity(manifest, r["variant"]), _bench(manifest, r["variant"])
    first = records[0]["metadata"]
    return {
        "bundle_schema": BUNDLE_SCHEMA, "edgec_version": __version__,
        "created": time.strftime("%Y-%m-%dT%H:%M:%SZ", time.gmtime()),
        "name": first["name"], "description": first["description"], "version": first["version"],
        "author": first["author"], "license": first["license"], "task": records[0]["task"],
        "target": {k: target.get(k) for k in ("name", "description", "runtime", "device") if k in target},
        "source": manifest.get("source"), "route": manifest.get("route"),
        "normalization": normalization,
        "labels": labels, "options": opts.to_dict(),
        "tools": {"edgec": __version__, "metadata": "TFLite metadata schema 1.5.0 (M001), written by edgec",
                  "python": env.get("python"), **(env.get("packages") or {})},
        "models": records,
    }


def write_zip(root: Path, zpath: Path) -> None:
    """Every file under ``root`` as ``bundle/<path>``, sorted, with fixed timestamps."""
    with zipfile.ZipFile(zpath, "w", compression=zipfile.ZIP_DEFLATED, compresslevel=6) as zf:
        for p in sorted(q for q in root.rglob("*") if q.is_file()):
            info = zipfile.ZipInfo(f"bundle/{p.relative_to(root).as_posix()}", date_time=ZIP_DATE)
            info.compress_type, info.external_attr = zipfile.ZIP_DEFLATED, 0o644 << 16
            zf.writestr(info, p.read_bytes())


def make_bundle(manifest: dict, models: dict[str, Path], opts: BundleOptions, norm: SourceNormalization,
                dest: Path, *, threads: int = 0, parity_mode: str = "fail") -> dict:
    """Write ``dest/bundle/`` and ``dest/bundle.zip``; return the bundle's manifest."""
    from edgec.bundle.card import model_card
    from edgec.bundle.snippets import write_snippets

    if not models:
        raise UsageError("no built TFLite variant to bundle", where="bundle.variants",
                         hint=f"bundle.variants {list(opts.variants or [])} names none of the built variants")
    from edgec.bundle.describe import describe

    plans = plan_models(manifest, models, opts, norm)           # every refusal happens here
    for p in plans:
        p.meta = describe(p, manifest, opts, norm, p.classes)     # (and here, for the metadata)
    root = dest / "bundle"
    root.mkdir()
    records = [write_model(p, root, threads) for p in plans]
    labels = None
    for name, data in plans[0].files.items():
        (root / name).write_bytes(data)
    if "labels.txt" in plans[0].files:
        labels = {"file": "labels.txt", "count": len(plans[0].files["labels.txt"].decode().splitlines()),
                  "sha256": hashlib.sha256(plans[0].files["labels.txt"]).hexdigest(), "from": opts.labels}
    bm = bundle_manifest(manifest, records, opts, _normalization(plans, norm, records), labels)
    write_snippets(root / "snippets", bm)
    (root / "MODEL_CARD.md").write_text(model_card(bm))
    bm["files"] = {p.relative_to(root).as_posix(): {"sha256": digest(p), "bytes": p.stat().st_size}
                   for p in sorted(root.rglob("*")) if p.is_file()}
    (root / "manifest.json").write_text(json.dumps(bm, indent=2, default=str))
    failed = [r["variant"] for r in records if not r["check"]["ok"]]
    if failed and parity_mode == "fail":
        raise ParityError(f"bundle model(s) {', '.join(failed)} differ from their build variants beyond the "
                          "budget; no bundle written", where="bundle",
                          hint="report it (a fold or dequantize pass changed the numbers); --parity warn "
                               "writes the bundle with the failure recorded")
    write_zip(root, dest / "bundle.zip")
    return bm
