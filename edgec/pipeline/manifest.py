"""The build's manifest: the machine-readable record of what was built, how, and how well.

``manifest.json`` is written last, so a directory with a manifest holds a finished build.
"""

from __future__ import annotations

import json
import os
import time
from pathlib import Path

from edgec.environment import __version__
from edgec.environment import environment as _environment
from edgec.formats import Artifact, Format, TensorSpec, digest, size_of
from edgec.formats.manifest import SCHEMA_VERSION, load_manifest  # noqa: F401  (re-exported)



def artifact_names(arts: list[Artifact]) -> dict[int, str]:
    """Each artifact's file name in the output directory."""
    names = {}
    for a in arts:
        if a.format is Format.TFLITE:
            names[id(a)] = f"model_{a.variant}.tflite"
        elif a.format is Format.ONNX:
            names[id(a)] = "model.onnx"
        elif a.format is Format.SAVED_MODEL:
            names[id(a)] = "saved_model"
        else:
            names[id(a)] = a.path.name
    return names


def build_manifest(ctx, src, route, chain, tflites, skipped, inputs, outputs, parity) -> dict:
    """``ctx``: the build's ``edgec.pipeline.context.BuildContext``."""
    names = artifact_names(chain[1:] + tflites)
    from edgec.formats.tflite import read_tflite

    fp32 = next(a for a in tflites if a.variant == "fp32")
    lite = read_tflite(fp32.path)
    io_meta = next((a.meta.get("io") for a in reversed(chain) if a.meta.get("io")), None)
    return {
        "schema_version": SCHEMA_VERSION,
        "edgec_version": __version__,
        "created": time.strftime("%Y-%m-%dT%H:%M:%SZ", time.gmtime()),
        "target": ctx.target.to_dict(),
        "config": ctx.cfg.to_dict(),
        "source": {"path": str(src.path) if not ctx.cfg.factory else None, "factory": ctx.cfg.factory,
                   "format": src.format.value, "sha256": src.meta["sha256"], "bytes": size_of(src.path)},
        "route": [src.format.value] + [c.dst.value for c in route] if route else [src.format.value],
        "inputs": [s.to_dict() for s in inputs],
        "outputs": [s.to_dict() for s in outputs],
        "tflite_io": tflite_io(inputs, outputs, lite, io_meta),
        "artifacts": [{"path": names[id(a)], "format": a.format.value, "variant": a.variant,
                       "sha256": a.meta.get("sha256") or digest(a.path), "bytes": size_of(a.path)}
                      for a in chain[1:] + tflites],
        "skipped_variants": skipped,
        "calibration": ctx.data.record()["calibration"],
        "steps": ctx.steps,
        "parity": parity,
        "environment": environment(),
    }


def tflite_io(inputs, outputs, lite, io_meta) -> dict:
    """Each source input/output with the TFLite signature name, tensor, shape, dtype and layout."""
    from edgec.formats.layout import layout_name
    from edgec.runtime.runners import match_io

    sig = lite.signatures.get("serving_default")
    tensors = {t.name: t for t in lite.inputs + lite.outputs}

    def rows(kind: str, source: list[TensorSpec], here_specs: list[TensorSpec]) -> list[dict]:
        if sig:
            here = [TensorSpec(n, tensors[t].shape, tensors[t].dtype) if t in tensors else TensorSpec(n, (), "")
                    for n, t in sig[kind].items()]
        else:
            here = here_specs
        pairs = (io_meta or {}).get(kind) if io_meta and sig else None
        pairs = pairs or match_io(source, here)
        by_name = {h.name: h for h in here}
        out = []
        for spec, p in zip(source, pairs):
            h = by_name.get(p["name"], TensorSpec(p["name"], (), ""))
            perm = p.get("perm")
            out.append({"source": spec.name, "name": h.name,
                        "tensor": sig[kind].get(h.name, h.name) if sig else h.name,
                        "shape": list(h.shape), "dtype": h.dtype, "source_shape": list(spec.shape),
                        "layout": layout_name(perm, len(spec.shape)) if perm is not None else None,
                        "perm": perm if perm != list(range(len(spec.shape))) else None})
        return out

    return {"inputs": rows("inputs", inputs, lite.inputs), "outputs": rows("outputs", outputs, lite.outputs)}


def environment() -> dict:
    from edgec.convert import envs

    return {**_environment(),
            "converter_environments": envs.summary()}  # the other converter families' venvs (edgec doctor)


def write_json(path: Path, data) -> dict:
    """Write JSON to a temp path and rename it into place (never half-written)."""
    tmp = path.with_name(path.name + ".tmp")
    tmp.write_text(json.dumps(data, indent=2, default=str))
    os.replace(tmp, path)
    return {}
