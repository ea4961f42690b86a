"""Filesystem moves shared by the build and the bundle: put a finished file or directory in place."""

from __future__ import annotations

import os
import shutil
import uuid
from pathlib import Path


def replace_path(src: Path, dst: Path) -> None:
    """Move ``src`` onto ``dst``: a file atomically (``os.replace``); a directory by renaming the old one
    aside first, so ``dst`` is never a mix of old and new."""
    if src.is_dir() and dst.exists():
        trash = dst.with_name(f".{dst.name}.old-{uuid.uuid4().hex[:8]}")
        os.rename(dst, trash)
        os.rename(src, dst)
        shutil.rmtree(trash, ignore_errors=True)
    else:
        os.replace(src, dst)
