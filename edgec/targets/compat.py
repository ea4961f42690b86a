"""Will this .tflite load on the device's runtime? Op codes and versions checked against the
profile's on-device runtime version, and, where that runtime is installed here, an actual load
(in a subprocess: an old runtime may abort on a model it cannot read).

tflite-runtime 2.14 (what pip gives a Raspberry Pi) cannot load TF 2.19's dynamic-range models:
``Didn't find op for builtin opcode 'FULLY_CONNECTED' version '12'``. This module says so, with
the ops that need a newer runtime, before anyone copies the file to the device.
"""

from __future__ import annotations

import functools
import subprocess
import sys
from pathlib import Path

LOADERS = {"tflite-runtime": "tflite_runtime", "ai-edge-litert": "ai_edge_litert"}  # distribution -> package


def _vkey(v: str) -> tuple[int, ...]:
    return tuple(int(x) for x in v.split(".") if x.isdigit())


@functools.lru_cache(maxsize=1)
def min_runtime_table() -> dict[str, list[str | None]]:
    from importlib import resources

    table = {}
    for line in resources.files("edgec.targets").joinpath("tflite_op_min_runtime.txt").read_text().splitlines():
        if line.strip() and not line.startswith("#"):
            op, *versions = line.split()
            table[op] = [None if v == "-" else v for v in versions]
    return table


def needed_version(op: str, version: int) -> str | None:
    """The minimum runtime for (op, version); None when the table does not know it."""
    row = min_runtime_table().get(op)
    if row is None or version < 1 or version > len(row):
        return None
    return row[version - 1]


def check_ops(ops: list[tuple[str, int, str]], runtime_version: str) -> dict:
    """ops: (name, version, node). Returns the (op, version)s newer than the runtime, and unknown ones."""
    have = _vkey(runtime_version)
    too_new: dict[tuple, dict] = {}
    unknown: dict[tuple, dict] = {}
    for name, version, node in ops:
        if name.startswith("CUSTOM:"):
            rec = unknown.setdefault((name, version), {"op": name, "version": version, "nodes": [],
                                                       "why": "custom op: needs its own kernel on the device"})
            rec["nodes"].append(node)
            continue
        need = needed_version(name, version)
        if need is None:
            rec = unknown.setdefault((name, version), {"op": name, "version": version, "nodes": [],
                                                       "why": "not in the op-version table (newer than TF 2.19?)"})
            rec["nodes"].append(node)
        elif _vkey(need) > have:
            rec = too_new.setdefault((name, version), {"op": name, "version": version, "needs": need, "nodes": []})
            rec["nodes"].append(node)
    trim = lambda recs: [{**r, "nodes": r["nodes"][:5], "count": len(r["nodes"])} for r in recs.values()]  # noqa: E731
    return {"too_new": trim(too_new), "unknown": trim(unknown)}


def model_min_runtime(path: Path) -> str | None:
    """The ``min_runtime_version`` the converter wrote into the model, if any."""
    from edgec.formats.tflite import _schema

    s = _schema()
    data = Path(path).read_bytes()
    m = s.Model.GetRootAs(data, 0)
    for i in range(m.MetadataLength()):
        e = m.Metadata(i)
        if e.Name() == b"min_runtime_version":
            b = m.Buffers(e.Buffer())
            raw = bytes(b.DataAsNumpy()) if b is not None and b.DataLength() else b""
            return raw.split(b"\x00")[0].decode() or None
    return None


def installed_version(dist: str) -> str | None:
    from importlib import metadata

    try:
        return metadata.version(dist)
    except metadata.PackageNotFoundError:
        return None


def try_load(path: Path, package: str, timeout: float = 120) -> dict:
    """Load (and allocate) the model with ``package``'s interpreter in a fresh Python process: the
    runtime layer's TFLite runner run as a script (``edgec/runtime/tflite.py --probe``)."""
    import json

    from edgec.runtime import tflite

    pkg = LOADERS.get(package)
    if pkg is None:
        return {"attempted": False, "reason": f"no Python loader known for {package}"}
    version = installed_version(package)
    if version is None:
        return {"attempted": False, "reason": f"{package} is not installed here"}
    try:
        p = subprocess.run([sys.executable, tflite.__file__, "--probe", str(path), "--package", pkg],
                           capture_output=True, text=True, timeout=timeout)
    except subprocess.TimeoutExpired:
        return {"attempted": True, "package": package, "version": version, "loaded": False,
                "error": f"timed out after {timeout:.0f} s"}
    line = next((ln for ln in reversed(p.stdout.splitlines()) if ln.startswith(tflite.PROBE_MARK)), None)
    probe = json.loads(line[len(tflite.PROBE_MARK):]) if line else {}
    ok = p.returncode == 0 and probe.get("loaded") is True
    err = "" if ok else (probe.get("error") or _error_line(p.stderr, p.returncode))
    return {"attempted": True, "package": package, "version": version, "loaded": ok, **({"error": err} if err else {})}


def _error_line(stderr: str, code: int) -> str:
    """What a probe that died without a result left on stderr (an abort in the runtime)."""
    lines = [ln.strip() for ln in stderr.splitlines() if ln.strip()]
    for ln in lines:
        if "Didn't find op" in ln or "Op builtin_code out of range" in ln:
            return ln
    return lines[-1] if lines else f"exit status {code}"


def check_artifact(path: Path, target, load: bool = True) -> dict:
    """The compatibility record of one .tflite for the profile's on-device runtime."""
    from edgec.formats.tflite import read_tflite

    rt = target.runtime
    if rt.name != "tflite":
        return {"checked": False, "reason": f"the profile runs {rt.name}, not a TFLite runtime"}
    info = read_tflite(path)
    rec: dict = {"on_device": rt.on_device, "model_min_runtime_version": model_min_runtime(path)}
    if rt.on_device_version:
        found = check_ops([(n, v, node) for (n, v), (_, node) in zip(info.ops, info.op_nodes)], rt.on_device_version)
        rec.update(runtime_version=rt.on_device_version, **found)
    pkg = rt.on_device_package
    if load and pkg:
        here = installed_version(pkg)
        if rt.on_device_version and here and _vkey(here)[:2] != _vkey(rt.on_device_version)[:2]:
            rec["load"] = {"attempted": False, "reason": f"{pkg} {here} is installed here, the device runs "
                                                         f"{rt.on_device_version}"}
        else:
            rec["load"] = try_load(path, pkg)
    load_failed = rec.get("load", {}).get("loaded") is False
    rec["ok"] = not rec.get("too_new") and not load_failed
    rec["checked"] = "runtime_version" in rec or rec.get("load", {}).get("attempted", False)
    return rec
