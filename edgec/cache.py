"""A content-addressed step cache.

An entry's key is a hash of the step's input bytes (sha256), the step's name, its settings and the
versions of the tools it runs. An entry is a directory ``<root>/<key[:2]>/<key>/`` holding
``output`` (a file or a directory) and ``entry.json``. It is assembled in a private temporary
directory and published with one atomic ``rename``: a reader sees a whole entry or none, an
interrupted build leaves only a temporary directory (swept later), and when two builds race on
the same key the loser discards its copy and uses the winner's.
"""

from __future__ import annotations

import functools
import hashlib
import json
import os
import shutil
import tempfile
import time
import uuid
from dataclasses import dataclass
from pathlib import Path
from typing import Callable

from .errors import OutputError
from .formats import digest

ENTRY_FILE = "entry.json"
_STALE_TMP_SECONDS = 24 * 3600


def default_cache_dir() -> Path:
    env = os.environ.get("EDGEC_CACHE_DIR")
    if env:
        return Path(env)
    base = os.environ.get("XDG_CACHE_HOME") or os.path.join(os.path.expanduser("~"), ".cache")
    return Path(base) / "edgec"


@functools.lru_cache(maxsize=1)
def code_digest() -> str:
    """A digest of edgec's own conversion code, so a changed converter or pass invalidates its
    cached outputs even within one release."""
    root = Path(__file__).parent
    h = hashlib.sha256()
    for sub in ("convert", "passes"):
        for p in sorted((root / sub).glob("*.py")):
            h.update(p.name.encode() + b"\0" + p.read_bytes())
    return h.hexdigest()


def step_key(step: str, input_sha: str, settings: dict, tools: dict[str, str]) -> str:
    from . import __version__

    blob = json.dumps({"step": step, "input": input_sha, "settings": settings, "tools": tools,
                       "edgec": __version__, "code": code_digest()},
                      sort_keys=True, default=str)
    return hashlib.sha256(blob.encode()).hexdigest()


@dataclass
class Entry:
    key: str
    path: Path          # the entry directory
    meta: dict

    @property
    def output(self) -> Path:
        return self.path / "output"


class Cache:
    def __init__(self, root: Path | None = None, *, enabled: bool = True):
        self.enabled = enabled
        self._owned_tmp = None
        if not enabled:
            self._owned_tmp = tempfile.TemporaryDirectory(prefix="edgec-nocache-")
            root = Path(self._owned_tmp.name)
        self.root = Path(root or default_cache_dir())
        try:
            (self.root / "tmp").mkdir(parents=True, exist_ok=True)
        except OSError as exc:
            raise OutputError(f"cannot create the cache directory ({exc.strerror})", where=str(self.root),
                              hint="pass --cache-dir to a writable place, or --no-cache") from exc
        self._sweep_stale()

    def close(self) -> None:
        if self._owned_tmp is not None:
            self._owned_tmp.cleanup()
            self._owned_tmp = None

    def _entry_dir(self, key: str) -> Path:
        return self.root / key[:2] / key

    def get(self, key: str) -> Entry | None:
        d = self._entry_dir(key)
        try:
            meta = json.loads((d / ENTRY_FILE).read_text())
        except (OSError, ValueError):
            return None
        out = d / "output"
        if not out.exists() or digest(out) != meta.get("output_sha256"):
            # Damaged by hand (the cache never writes in place): drop it and rebuild.
            self._discard(d)
            return None
        return Entry(key, d, meta)

    def put(self, key: str, produce: Callable[[Path], dict]) -> Entry:
        """Run ``produce(output_path)`` in a private directory and publish the result atomically.

        ``produce`` writes a file or directory at ``output_path`` and returns metadata to store.
        """
        tmp = self.root / "tmp" / f"{key}.{uuid.uuid4().hex}"
        tmp.mkdir(parents=True)
        try:
            meta = dict(produce(tmp / "output"))
            if not (tmp / "output").exists():
                raise OutputError(f"step produced no output (cache key {key[:12]})")
            meta["output_sha256"] = digest(tmp / "output")
            meta["created"] = time.time()
            (tmp / ENTRY_FILE).write_text(json.dumps(meta, indent=1, default=str))
            final = self._entry_dir(key)
            final.parent.mkdir(parents=True, exist_ok=True)
            try:
                os.rename(tmp, final)
            except OSError:
                # Someone else published the same key first (or a damaged entry is in the way).
                existing = self.get(key)
                if existing is not None:
                    shutil.rmtree(tmp, ignore_errors=True)
                    return existing
                self._discard(final)
                os.rename(tmp, final)
        except BaseException:
            shutil.rmtree(tmp, ignore_errors=True)
            raise
        return Entry(key, final, meta)

    def _discard(self, d: Path) -> None:
        if d.exists():
            graveyard = self.root / "tmp" / f"discard.{uuid.uuid4().hex}"
            try:
                os.rename(d, graveyard)  # atomic removal from view, then delete at leisure
            except OSError:
                return
            shutil.rmtree(graveyard, ignore_errors=True)

    def _sweep_stale(self) -> None:
        now = time.time()
        for p in (self.root / "tmp").iterdir():
            try:
                if now - p.stat().st_mtime > _STALE_TMP_SECONDS:
                    shutil.rmtree(p, ignore_errors=True) if p.is_dir() else p.unlink()
            except OSError:
                pass
