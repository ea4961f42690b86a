"""A content-addressed step cache.

An entry's key is a hash of the step's input bytes (sha256), the step's name, its settings and the
versions of the tools it runs. An entry is a directory ``<root>/<key[:2]>/<key>/`` holding
``output`` (a file or a directory) and ``entry.json``. It is assembled in a private temporary
directory and published with one atomic ``rename``: a reader sees a whole entry or none, an
interrupted build leaves only a temporary directory (swept later), and when two builds race on
the same key the loser discards its copy and uses the winner's.
"""

from __future__ import annotations

import contextlib
import functools
import hashlib
import json
import os
import shutil
import tempfile
import threading
import time
import uuid
from dataclasses import dataclass
from pathlib import Path
from typing import Callable

from edgec.errors import OutputError
from edgec.formats import digest

ENTRY_FILE = "entry.json"
_STALE_TMP_SECONDS = 24 * 3600
_HELD: set[str] = set()  # keys whose lock this process holds
_HELD_GUARD = threading.Lock()


def default_cache_dir() -> Path:
    env = os.environ.get("EDGEC_CACHE_DIR")
    if env:
        return Path(env)
    base = os.environ.get("XDG_CACHE_HOME") or os.path.join(os.path.expanduser("~"), ".cache")
    return Path(base) / "edgec"


DEFAULT_CODE = ("convert", "passes", "formats")  # what shapes a conversion step's output


@functools.lru_cache(maxsize=None)
def code_digest(parts: tuple[str, ...] = DEFAULT_CODE, root: Path | None = None) -> str:
    """A digest of the edgec code that shapes a cached result, so a changed converter, pass, ledger
    or bench loop invalidates its cached outputs even within one release. ``parts`` are packages
    (``"validate"``: every module under it) or modules (``"pipeline/bench_step.py"``) of edgec."""
    root = root or Path(__file__).resolve().parents[1]
    h = hashlib.sha256()
    for part in sorted(set(parts)):
        files = [root / part] if part.endswith(".py") else sorted((root / part).rglob("*.py"))
        if not files or not all(f.is_file() for f in files):
            raise ValueError(f"code_digest: no edgec code at {part!r}")
        for f in files:
            h.update(str(f.relative_to(root)).encode() + b"\0" + f.read_bytes())
    return h.hexdigest()


def step_key(step: str, input_sha: str, settings: dict, tools: dict[str, str],
             code: tuple[str, ...] = DEFAULT_CODE) -> str:
    """The cache key of a step: its input's bytes, its settings, the tools' versions, edgec's version
    and a digest of the edgec code (``code``) that shapes its result."""
    from edgec.environment import __version__

    blob = json.dumps({"step": step, "input": input_sha, "settings": settings, "tools": tools,
                       "edgec": __version__, "code": code_digest(tuple(sorted(set(code))))},
                      sort_keys=True, default=str)
    return hashlib.sha256(blob.encode()).hexdigest()


@dataclass
class Entry:
    key: str
    path: Path          # the entry directory
    meta: dict
    reused: bool = False  # put() found it published by a concurrent build and did not produce it

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

    @staticmethod
    def key(step: str, input_sha: str, settings: dict, tools: dict[str, str],
            code: tuple[str, ...] = DEFAULT_CODE) -> str:
        """``step_key``, for the layers that get the cache handed in (the ledger) and do not import it."""
        return step_key(step, input_sha, settings, tools, code)

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
        Concurrent builds that reach the same key take a per-key lock: one produces, the others wait
        and get its entry (``reused``), so a step shared by several builds runs once.
        """
        with self._key_lock(key):
            existing = self.get(key)
            if existing is not None:
                existing.reused = True
                return existing
            return self._put(key, produce)

    @contextlib.contextmanager
    def _key_lock(self, key: str):
        """An advisory per-key lock between processes (``flock`` on ``locks/<key>``): released by the
        kernel when the holder dies, so a crashed build never leaves the key locked. Threads of one
        process do not wait for each other (they race on the publishing rename, which is safe)."""
        with _HELD_GUARD:
            mine = key in _HELD  # another thread of this process holds it: keep the rename race
            _HELD.add(key)
        if mine:
            yield
            return
        try:
            with self._flock(key):
                yield
        finally:
            with _HELD_GUARD:
                _HELD.discard(key)

    @contextlib.contextmanager
    def _flock(self, key: str):
        locks = self.root / "locks"
        try:
            locks.mkdir(exist_ok=True)
            fd = os.open(locks / key, os.O_CREAT | os.O_RDWR, 0o644)
        except OSError:
            yield  # a read-only or odd filesystem: fall back to the rename race, which stays correct
            return
        try:
            import fcntl

            fcntl.flock(fd, fcntl.LOCK_EX)
            yield
        finally:
            os.close(fd)

    def _put(self, key: str, produce: Callable[[Path], dict]) -> Entry:
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


def _verify_local(cache: "Cache") -> dict:
    """Every entry's output against its recorded digest; a half-written entry never shows (rename)."""
    n, corrupt = 0, []
    for d in sorted(cache.root.glob("??/*")):
        if not d.is_dir():
            continue
        n += 1
        try:
            meta = json.loads((d / ENTRY_FILE).read_text())
            ok = (d / "output").exists() and digest(d / "output") == meta.get("output_sha256")
        except (OSError, ValueError):
            ok = False
        if not ok:
            corrupt.append(str(d))
    return {"cache": str(cache.root), "entries": n, "corrupt": corrupt}


Cache.verify = _verify_local


def open_cache(where: str | os.PathLike | None = None, *, enabled: bool = True) -> "Cache":
    """The step cache at a directory, or at an fsspec URL (``s3://bucket/prefix``, ``memory://...``):
    a remote store is fronted by a local mirror, since converters read and write local files."""
    text = str(where) if where is not None else None
    if enabled and text and "://" in text and not text.startswith("file://"):
        return RemoteCache(text)
    if text and text.startswith("file://"):
        text = text[len("file://"):]
    return Cache(Path(text) if text else None, enabled=enabled)


REMOTE_LEASE_SECONDS = 2 * 3600   # a runner computing a key holds a lease; past this it is presumed dead
REMOTE_POLL_SECONDS = 1.0


class RemoteCache(Cache):
    """A shared cache on any fsspec store. Layout under the URL:

    ``entries/<key[:2]>/<key>.json``   the published marker: the entry's metadata + its blob's name and digest
    ``blobs/<key>.<uuid>.tar``         the output (a tar), uploaded before the marker, under a unique name
    ``leases/<key>``                   held while a runner computes the key (others wait for the marker)

    Publication: upload the blob under a unique name, then create the marker with a conditional put
    (``If-None-Match: *`` on S3) so exactly one runner's entry wins; the loser deletes its blob and uses
    the winner's. On a store without conditional writes the marker is written only if absent and read
    back: whoever's marker is there is the entry. Readers verify the blob's digest and the output's,
    so a damaged or partial upload is never used.
    """

    def __init__(self, url: str, local_root: Path | None = None):
        import fsspec

        from edgec.errors import DependencyError

        try:
            self.fs, self.base = fsspec.core.url_to_fs(url)
        except (ImportError, ValueError) as exc:
            raise DependencyError(f"cannot open the cache store {url} ({exc})",
                                  hint="for s3:// install s3fs (pip install 'edgec[all]' -c constraints.txt)") from None
        self.url = url.rstrip("/")
        self.base = self.base.rstrip("/")
        local = local_root or Path(os.environ.get("EDGEC_CACHE_MIRROR") or default_cache_dir() / "mirrors" /
                                   hashlib.sha256(self.url.encode()).hexdigest()[:16])
        super().__init__(local)

    def _r(self, *parts: str) -> str:
        return "/".join((self.base, *parts))

    def _marker(self, key: str) -> str:
        return self._r("entries", key[:2], f"{key}.json")

    def get(self, key: str) -> Entry | None:
        entry = super().get(key)
        if entry is not None:
            return entry
        try:
            marker = json.loads(self.fs.cat_file(self._marker(key)))
        except (FileNotFoundError, ValueError):
            return None
        return self._download(key, marker)

    def _download(self, key: str, marker: dict) -> Entry | None:
        import io
        import tarfile

        try:
            blob = self.fs.cat_file(self._r("blobs", marker["blob"]))
        except (FileNotFoundError, KeyError):
            return None
        if hashlib.sha256(blob).hexdigest() != marker.get("blob_sha256"):
            return None  # damaged: the verify pass reports it

        def produce(out: Path) -> dict:
            with tarfile.open(fileobj=io.BytesIO(blob)) as tar:
                tar.extractall(out.parent / "unpack", filter="data")
            os.rename(out.parent / "unpack" / "output", out)
            (out.parent / "unpack").rmdir()
            return {k: v for k, v in marker["meta"].items() if k not in ("output_sha256", "created")}

        entry = super()._put(key, produce)
        if entry.meta["output_sha256"] != marker["meta"].get("output_sha256"):
            self._discard(entry.path)
            return None
        return entry

    def put(self, key: str, produce: Callable[[Path], dict]) -> Entry:
        with self._key_lock(key):   # runners on this machine
            existing, held = self.get(key), False
            if existing is None:
                held = self._take_lease(key)
                # Read again: another runner may have published between our miss and our lease (it
                # releases its lease right after publishing), or while we waited for its lease.
                existing = self.get(key)
                if existing is not None and held:
                    self._release_lease(key)
            if existing is not None:
                existing.reused = True
                return existing
            try:
                entry = super()._put(key, produce)
                won = self._publish(key, entry)
            finally:
                if held:
                    self._release_lease(key)
            if won is not None:  # another runner published first: use its entry
                self._discard(entry.path)
                return self._download(key, won) or entry
            return entry

    # -- leases: runners on other machines wait instead of computing the same key -----------------------
    def _take_lease(self, key: str) -> bool:
        """Take the key's lease (True); or, while another runner holds a live one, wait until its marker
        is published (False: the lease is not ours)."""
        lease = self._r("leases", key)
        while True:
            if _create(self.fs, lease, json.dumps({"t": time.time()}).encode()):
                return True
            try:
                t = json.loads(self.fs.cat_file(lease)).get("t", 0)
            except (FileNotFoundError, ValueError):
                continue
            if time.time() - t > REMOTE_LEASE_SECONDS:
                self._release_lease(key)  # its holder died: take it over
                continue
            if self.fs.exists(self._marker(key)):
                return False
            time.sleep(REMOTE_POLL_SECONDS)

    def _release_lease(self, key: str) -> None:
        try:
            self.fs.rm_file(self._r("leases", key))
        except (FileNotFoundError, OSError):
            pass

    def _publish(self, key: str, entry: Entry) -> dict | None:
        """Upload ``entry``; None if ours is the published one, else the winner's marker."""
        import io
        import tarfile

        buf = io.BytesIO()
        with tarfile.open(fileobj=buf, mode="w") as tar:
            tar.add(entry.output, arcname="output")
        blob = buf.getvalue()
        name = f"{key}.{uuid.uuid4().hex}.tar"
        self.fs.pipe_file(self._r("blobs", name), blob)
        marker = {"key": key, "blob": name, "blob_sha256": hashlib.sha256(blob).hexdigest(), "meta": entry.meta}
        if _create(self.fs, self._marker(key), json.dumps(marker, default=str).encode()):
            try:
                if json.loads(self.fs.cat_file(self._marker(key))).get("blob") == name:
                    return None
            except (FileNotFoundError, ValueError):
                pass
        self.fs.rm_file(self._r("blobs", name))  # lost the race: ours is never referenced
        try:
            return json.loads(self.fs.cat_file(self._marker(key)))
        except (FileNotFoundError, ValueError):
            return None

    def verify(self) -> dict:
        """Every published marker: its blob exists, matches its digest, and unpacks to the recorded output
        digest; blobs no marker references are counted (left by an interrupted runner)."""
        import io
        import tarfile
        import tempfile

        n, corrupt = 0, []
        markers = [p for p in self.fs.find(self._r("entries")) if p.endswith(".json")] \
            if self.fs.exists(self._r("entries")) else []
        referenced = set()
        for p in markers:
            n += 1
            try:
                m = json.loads(self.fs.cat_file(p))
                referenced.add(m["blob"])
                blob = self.fs.cat_file(self._r("blobs", m["blob"]))
                ok = hashlib.sha256(blob).hexdigest() == m["blob_sha256"]
                if ok:
                    with tempfile.TemporaryDirectory() as d, tarfile.open(fileobj=io.BytesIO(blob)) as tar:
                        tar.extractall(d, filter="data")
                        ok = digest(Path(d) / "output") == m["meta"]["output_sha256"]
            except (FileNotFoundError, ValueError, KeyError, tarfile.TarError):
                ok = False
            if not ok:
                corrupt.append(p)
        blobs = [p.rsplit("/", 1)[-1] for p in self.fs.find(self._r("blobs"))] if self.fs.exists(self._r("blobs")) else []
        return {"cache": self.url, "entries": n, "corrupt": corrupt,
                "unreferenced_blobs": len([b for b in blobs if b not in referenced])}


def _create(fs, path: str, data: bytes) -> bool:
    """Write ``path`` only if it does not exist; False if it does. Conditional where the store supports
    it (S3 ``If-None-Match``, local ``O_EXCL``); else check-then-write (the caller reads back)."""
    try:
        fs.pipe_file(path, data, mode="create")
        return True
    except FileExistsError:
        return False
    except (TypeError, NotImplementedError, ValueError):
        pass
    except OSError as exc:
        if "PreconditionFailed" in str(exc) or "412" in str(exc):
            return False
        raise
    if fs.exists(path):
        return False
    fs.pipe_file(path, data)
    return True
