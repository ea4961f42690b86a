"""The result model the renderers share: read a build's manifest once, check its schema version, and
derive the per-variant and per-stage rows every renderer shows (so JSON, Markdown and HTML can never
disagree about a number)."""

from __future__ import annotations

import json
from dataclasses import dataclass, field
from pathlib import Path

from edgec.errors import InputError

SUPPORTED_SCHEMA = (1,)
REQUIRED_KEYS = ("schema_version", "edgec_version", "target", "route", "artifacts", "steps", "environment")


@dataclass
class VariantRow:
    variant: str
    path: str
    bytes: int
    p50_ms: float | None = None
    p90_ms: float | None = None
    samples_ms: list[float] = field(default_factory=list)
    est_p50_ms: float | None = None
    est_low_ms: float | None = None
    est_high_ms: float | None = None
    est_device: str | None = None
    parity_ok: bool | None = None
    cosine: float | None = None
    top1: float | None = None
    max_abs: float | None = None
    dev_p50_ms: float | None = None     # measured on a real device (--device), beside the estimate
    dev_p90_ms: float | None = None
    dev_name: str | None = None


@dataclass
class StageRow:
    stage: str
    ok: bool
    budget: dict
    outputs: list[dict]


@dataclass
class Report:
    manifest: dict
    where: str
    variants: list[VariantRow]
    stages: list[StageRow]

    @property
    def title(self) -> str:
        src = self.manifest.get("source", {})
        name = Path(src.get("path") or src.get("factory") or "model").name
        return f"{name} for {self.manifest['target']['name']}"


def load_report(out: str | Path) -> Report:
    out = Path(out)
    path = out / "manifest.json" if out.is_dir() else out
    try:
        m = json.loads(path.read_text())
    except FileNotFoundError:
        raise InputError("no manifest.json here (not an edgec build directory)", where=str(out),
                         hint="pass the -o directory of an `edgec build`") from None
    except (ValueError, UnicodeDecodeError) as exc:
        raise InputError(f"corrupt manifest: not valid JSON ({exc})", where=str(path),
                         hint="rebuild with `edgec build`") from exc
    return report_from_manifest(m, str(path))


def report_from_manifest(m: dict, where: str = "manifest.json") -> Report:
    if not isinstance(m, dict):
        raise InputError("corrupt manifest: the top level is not an object", where=where)
    version = m.get("schema_version")
    if version not in SUPPORTED_SCHEMA:
        raise InputError(f"manifest schema version {version!r} is not supported by this edgec "
                         f"(reads {', '.join(map(str, SUPPORTED_SCHEMA))})", where=where,
                         hint="rebuild the model with this edgec version")
    missing = [k for k in REQUIRED_KEYS if k not in m]
    if missing:
        raise InputError(f"corrupt manifest: missing {', '.join(missing)}", where=where,
                         hint="rebuild with `edgec build`")
    return Report(m, where, _variant_rows(m), _stage_rows(m))


def _stage_rows(m: dict) -> list[StageRow]:
    stages = (m.get("parity") or {}).get("stages") or []
    return [StageRow(s.get("stage", "?"), bool(s.get("ok")), s.get("budget") or {}, s.get("outputs") or [])
            for s in stages]


def _bench_for(m: dict, variant: str) -> dict:
    bench = m.get("bench") or {}
    if isinstance(bench, dict):
        b = bench.get(variant) or {}
        return b if isinstance(b, dict) else {}
    return {}


def _variant_rows(m: dict) -> list[VariantRow]:
    stages = {s.get("stage"): s for s in (m.get("parity") or {}).get("stages") or []}
    rows = []
    for a in m["artifacts"]:
        if a.get("format") != "tflite" or not a.get("variant"):
            continue
        v = a["variant"]
        b = _bench_for(m, v)
        est = b.get("estimate") or {}
        st = stages.get(f"tflite:{v}") or {}
        first = (st.get("outputs") or [{}])[0]
        rows.append(VariantRow(
            variant=v, path=a["path"], bytes=int(a["bytes"]),
            p50_ms=b.get("p50_ms"), p90_ms=b.get("p90_ms"),
            samples_ms=list(b.get("samples_ms") or b.get("samples") or []),
            est_p50_ms=est.get("p50_ms"), est_low_ms=est.get("low_ms"), est_high_ms=est.get("high_ms"),
            est_device=est.get("device"),
            parity_ok=st.get("ok") if st else None, cosine=first.get("cosine"), top1=first.get("top1"),
            max_abs=first.get("max_abs"),
            dev_p50_ms=(b.get("device") or {}).get("p50_ms"), dev_p90_ms=(b.get("device") or {}).get("p90_ms"),
            dev_name=(b.get("device") or {}).get("measured_on")))
    return rows
