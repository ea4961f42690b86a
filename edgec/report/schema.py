"""The versioned JSON schema of ``manifest.json`` (the one result model every report renders).

Bump ``SCHEMA_VERSION`` (in edgec/formats/manifest.py) on an incompatible change; readers refuse versions they
do not know. Sections added later (``bench``, ``bundle``, ...) are allowed and typed where known.
"""

from __future__ import annotations

_SPEC = {"type": "object", "required": ["name", "shape", "dtype"],
         "properties": {"name": {"type": "string"}, "dtype": {"type": "string"},
                        "shape": {"type": "array", "items": {"type": ["integer", "null"]}},
                        "layout": {"type": ["string", "null"]}}}
_NUM = {"type": ["number", "string"]}  # JSON has no Infinity: non-finite values are written as strings

_METRICS = {"type": "object", "required": ["max_abs", "cosine"],
            "properties": {k: _NUM for k in ("max_abs", "mean_abs", "max_rel", "cosine", "snr_db", "top1")}}

MANIFEST_SCHEMA = {
    "$schema": "https://json-schema.org/draft/2020-12/schema",
    "title": "edgec build manifest",
    "type": "object",
    "required": ["schema_version", "edgec_version", "target", "route", "artifacts", "steps", "environment",
                 "inputs", "outputs", "parity", "route_search"],
    "properties": {
        "schema_version": {"const": 1},
        "edgec_version": {"type": "string"},
        "created": {"type": "string"},
        "target": {"type": "object", "required": ["name", "description", "runtime", "variants"]},
        "config": {"type": "object"},
        "source": {"type": "object", "required": ["format", "sha256", "bytes"]},
        "route": {"type": "array", "items": {"type": "string"}, "minItems": 1},
        "inputs": {"type": "array", "items": _SPEC},
        "outputs": {"type": "array", "items": _SPEC},
        "tflite_io": {"type": "object"},
        "artifacts": {"type": "array", "items": {
            "type": "object", "required": ["path", "format", "sha256", "bytes"],
            "properties": {"path": {"type": "string"}, "format": {"type": "string"},
                           "variant": {"type": ["string", "null"]},
                           "sha256": {"type": "string", "pattern": "^[0-9a-f]{64}$"},
                           "bytes": {"type": "integer", "minimum": 0}}}},
        "steps": {"type": "array", "items": {
            "type": "object", "required": ["name", "input_sha256", "output_sha256", "tools", "cached"],
            "properties": {"tools": {"type": "object", "additionalProperties": {"type": "string"}},
                           "cached": {"type": "boolean"}, "seconds": {"type": ["number", "null"]}}}},
        "parity": {"type": "object", "required": ["ok"], "properties": {
            "ok": {"type": "boolean"},
            "stages": {"type": "array", "items": {
                "type": "object", "required": ["stage", "ok", "outputs"],
                "properties": {"outputs": {"type": "array", "items": _METRICS}}}}}},
        "route_search": {"type": "object", "required": ["chosen", "reason", "attempts"], "properties": {
            "chosen": {"type": "array", "items": {"type": "string"}},
            "reason": {"type": "string"},
            "attempts": {"type": "array", "items": {
                "type": "object", "required": ["route", "converter", "options", "ok", "reason", "seconds"],
                "properties": {"route": {"type": "array", "items": {"type": "string"}},
                               "converter": {"type": "array", "items": {"type": "string"}},
                               "options": {"type": "object"}, "ok": {"type": "boolean"},
                               "reason": {"type": "string"}, "seconds": {"type": "number"}}}}}},
        "bench": {"type": "object", "additionalProperties": {"type": "object"}},
        "environment": {"type": "object", "required": ["python", "platform", "packages"]},
    },
}
