"""The build's output format: ``OUT/manifest.json`` (its schema: ``edgec.report.schema``).

Bump ``SCHEMA_VERSION`` on an incompatible change; readers refuse versions they do not know.
"""

from __future__ import annotations

import json
from pathlib import Path

from edgec.errors import InputError

SCHEMA_VERSION = 1


def load_manifest(out: Path) -> dict:
    p = Path(out) / "manifest.json"
    try:
        return json.loads(p.read_text())
    except FileNotFoundError:
        raise InputError("no manifest.json (not an edgec build directory)", where=str(out)) from None
    except ValueError as exc:
        raise InputError(f"corrupt manifest ({exc})", where=str(p)) from exc
