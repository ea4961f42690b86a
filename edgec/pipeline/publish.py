"""Publishing a build: nothing is written into the output directory until the whole build has
succeeded. The build is assembled in a staging directory beside it and moved into place file by
file, manifest last."""

from __future__ import annotations

import shutil
import tempfile
import uuid
from pathlib import Path

from edgec.errors import OutputError
from edgec.formats import Artifact
from edgec.fsio import replace_path
from edgec.pipeline.manifest import artifact_names, write_json


def check_writable(out: Path) -> None:
    """Fail before any work if the output cannot be written (tested by writing, not by mode bits)."""
    if out.exists() and not out.is_dir():
        raise OutputError("output path exists and is not a directory", where=str(out), hint="pick another -o")
    parent = out.resolve().parent
    if not parent.is_dir():
        raise OutputError("parent directory of the output does not exist", where=str(out),
                          hint=f"create {parent} first")
    for d in ([out] if out.is_dir() else []) + [parent]:
        try:
            tempfile.TemporaryDirectory(prefix=".edgec-probe-", dir=d).cleanup()
        except OSError as exc:
            raise OutputError(f"output directory is not writable ({exc.strerror})", where=str(out),
                              hint="pick another -o") from None


def publish(out: Path, arts: list[Artifact], manifest: dict, write_extra=None) -> None:
    """``write_extra(staging)`` (the bundle) writes more entries; it may add to the manifest."""
    names = artifact_names(arts)
    staging = out.resolve().parent / f".{out.name}.edgec-{uuid.uuid4().hex[:8]}"
    try:
        staging.mkdir()
        for a in arts:
            dst = staging / names[id(a)]
            if a.path.is_dir():
                shutil.copytree(a.path, dst)
            else:
                shutil.copyfile(a.path, dst)
        if write_extra is not None:
            write_extra(staging)
        write_json(staging / "manifest.json", manifest)
        from edgec.report import write_reports_for

        write_reports_for(manifest, staging)
        out.mkdir(exist_ok=True)
        for entry in sorted(staging.iterdir(), key=lambda p: p.name == "manifest.json"):
            replace_path(entry, out / entry.name)
    except OSError as exc:
        raise OutputError(f"cannot write the build ({exc.strerror or exc})", where=str(out)) from exc
    finally:
        shutil.rmtree(staging, ignore_errors=True)
