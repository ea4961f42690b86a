"""Converter environments: a converter family whose pins cannot share edgec's venv gets its own.

litert-torch 0.10 wants numpy 2, protobuf 7 and ai-edge-litert 2.3; onnx2tf 1.29.24 pins numpy
1.26.4, protobuf 4.25.5 and ai-edge-litert 2.1.0. So ``scripts/setup.sh`` creates a second venv,
``.venv-litert`` (pinned by ``constraints-litert.txt``), and edgec runs that family's edge there as a
subprocess (``run``): a JSON task in, a JSON result out, a timeout, the stderr tail kept for the
error. The environment's tool versions (read from its site-packages without starting it) key the
step cache and go into the manifest like any in-process edge's.

``EDGEC_ENV_LITERT=/path/to/venv`` points edgec at another venv for the family.
"""

from __future__ import annotations

import functools
import json
import os
import signal
import subprocess
import tempfile
from dataclasses import dataclass
from pathlib import Path

from edgec.errors import ConversionError, DependencyError

ROOT = Path(__file__).resolve().parents[2]   # the checkout (or the install prefix) holding .venv-*
SETUP_HINT = "create it with `bash scripts/setup.sh` (it makes .venv and the converter environments)"


@dataclass(frozen=True)
class ConverterEnv:
    """One converter family's Python environment."""

    name: str
    venv: str                  # directory relative to ROOT (or $EDGEC_ENV_<NAME>)
    constraints: str           # its pip constraints file, in ROOT
    packages: tuple[str, ...]  # distributions whose versions key the cache and the manifest
    imports: tuple[str, ...]   # modules that must import for the environment to work
    purpose: str

    @property
    def path(self) -> Path:
        if not self.venv:  # edgec's own environment: the one running now
            import sys

            return Path(sys.prefix)
        override = os.environ.get(f"EDGEC_ENV_{self.name.upper()}")
        return Path(override) if override else ROOT / self.venv

    @property
    def python(self) -> Path:
        return self.path / "bin" / "python"


ENVS: dict[str, ConverterEnv] = {
    "edgec": ConverterEnv("edgec", "", "constraints.txt",
                          ("torch", "onnx", "onnx2tf", "tensorflow", "onnxruntime", "ai-edge-litert", "numpy",
                           "protobuf"),
                          ("torch", "onnx", "onnx2tf", "tensorflow", "onnxruntime", "ai_edge_litert"),
                          "edgec itself: torch -> ONNX -> TensorFlow -> TFLite (onnx2tf, TFLiteConverter)"),
    "litert": ConverterEnv("litert", ".venv-litert", "constraints-litert.txt",
                           ("litert-torch", "torch", "ai-edge-quantizer", "ai-edge-litert", "litert-converter",
                            "numpy"),
                           ("litert_torch", "ai_edge_quantizer", "ai_edge_litert", "torch"),
                           "litert-torch: PyTorch -> TFLite through torch.export (no TensorFlow)"),
}


def get(name: str) -> ConverterEnv:
    return ENVS[name]


def site_packages(env: ConverterEnv) -> Path | None:
    lib = env.path / "lib"
    found = sorted(lib.glob("python3*/site-packages")) if lib.is_dir() else []
    return found[0] if found else None


def require_env(env: ConverterEnv) -> Path:
    """The environment's interpreter; a missing one is a DependencyError saying how to create it."""
    if not env.python.exists():
        raise DependencyError(f"the '{env.name}' converter environment is missing (no {env.python})",
                              hint=SETUP_HINT)
    missing = [d for d, v in versions(env).items() if v == "not installed" and d in env.packages[:2]]
    if missing:
        raise DependencyError(f"the '{env.name}' converter environment at {env.path} lacks "
                              f"{', '.join(missing)}", hint=f"re-run `bash scripts/setup.sh`; it installs "
                              f"{env.constraints}")
    return env.python


@functools.lru_cache(maxsize=None)
def _versions_at(site: str, dists: tuple[str, ...]) -> dict[str, str]:
    from importlib import metadata

    found = {}
    for d in metadata.distributions(path=[site]):
        name = (d.metadata["Name"] or "").lower().replace("_", "-")
        found.setdefault(name, d.version)
    return {d: found.get(d.lower().replace("_", "-"), "not installed") for d in dists}


def versions(env: ConverterEnv, dists: tuple[str, ...] | None = None) -> dict[str, str]:
    """Versions of ``dists`` in the environment, read from its site-packages (no interpreter start)."""
    dists = tuple(dists or env.packages)
    site = site_packages(env)
    if site is None:
        return {d: "not installed" for d in dists}
    return _versions_at(str(site), dists)


def summary() -> dict:
    """Each converter environment other than edgec's own: where it is and its key versions."""
    return {e.name: {"path": str(e.path), "present": e.python.exists(), "packages": versions(e)}
            for e in ENVS.values() if e.venv}


def run(env: ConverterEnv, script: Path, task: dict, *, timeout: float, what: str, where: str | None = None) -> dict:
    """Run ``script TASK.json RESULT.json`` in the environment; the parsed result. A child that dies
    or runs past ``timeout`` is a ConversionError keeping its stderr tail."""
    python = require_env(env)
    with tempfile.TemporaryDirectory(prefix=f"edgec-{env.name}-") as work:
        task_path, result_path = Path(work) / "task.json", Path(work) / "result.json"
        task_path.write_text(json.dumps(task))
        child_env = {**os.environ, "TF_CPP_MIN_LOG_LEVEL": os.environ.get("TF_CPP_MIN_LOG_LEVEL", "3")}
        try:
            # -I: isolated (no script directory on sys.path, so edgec's module named litert_torch does
            # not shadow the package; no PYTHONPATH, no user site-packages)
            proc = subprocess.run([str(python), "-I", str(script), str(task_path), str(result_path)], cwd=work,
                                  env=child_env, capture_output=True, text=True, timeout=timeout)
        except subprocess.TimeoutExpired:
            raise ConversionError(f"{what} ran past its {timeout:.0f} s limit in the '{env.name}' environment",
                                  where=where, hint="run with --debug, or pick another route with --route") from None
        if not result_path.is_file():
            raise ConversionError(f"{what} died in the '{env.name}' environment ({_status(proc.returncode)}): "
                                  f"{_tail(proc.stderr)}", where=where,
                                  hint=f"check the environment with `edgec doctor`; {SETUP_HINT}")
        result = json.loads(result_path.read_text())
    result["stderr_tail"] = _tail(proc.stderr, 2000)
    return result


def check(env: ConverterEnv, timeout: float = 120.0) -> dict:
    """Does the environment's interpreter start and import its key modules? (for ``edgec doctor``)"""
    out = {"name": env.name, "path": str(env.path), "python": str(env.python), "purpose": env.purpose,
           "constraints": env.constraints, "packages": versions(env)}
    if not env.python.exists():
        return {**out, "ok": False, "error": f"missing: {SETUP_HINT}"}
    code = ("import importlib, json, sys, time\nres = {}\nfor m in sys.argv[1:]:\n    t = time.perf_counter()\n"
            "    try:\n        importlib.import_module(m); res[m] = {'ok': True}\n"
            "    except Exception as e:\n        res[m] = {'ok': False, 'error': f'{type(e).__name__}: {e}'[:300]}\n"
            "    res[m]['seconds'] = round(time.perf_counter() - t, 2)\n"
            "print(json.dumps({'python': sys.version.split()[0], 'imports': res}))\n")
    try:
        proc = subprocess.run([str(env.python), "-I", "-c", code, *env.imports], capture_output=True, text=True,
                              timeout=timeout, env={**os.environ, "TF_CPP_MIN_LOG_LEVEL": "3"})
    except subprocess.TimeoutExpired:
        return {**out, "ok": False, "error": f"importing {', '.join(env.imports)} ran past {timeout:.0f} s"}
    try:
        data = json.loads(proc.stdout.strip().splitlines()[-1])
    except (ValueError, IndexError):
        return {**out, "ok": False, "error": f"the interpreter failed ({_status(proc.returncode)}): "
                                             f"{_tail(proc.stderr)}"}
    ok = all(v["ok"] for v in data["imports"].values())
    return {**out, "ok": ok, "python_version": data["python"], "imports": data["imports"],
            **({} if ok else {"error": "; ".join(f"{m}: {v['error']}" for m, v in data["imports"].items()
                                                 if not v["ok"])})}


def _status(code: int) -> str:
    if code is not None and code < 0:
        try:
            return f"killed by {signal.Signals(-code).name}"
        except ValueError:
            return f"signal {-code}"
    return f"exit {code}"


def _tail(text: str, n: int = 600) -> str:
    lines = [ln for ln in (text or "").strip().splitlines() if ln.strip()]
    return " | ".join(lines[-4:])[-n:] if lines else "(no output)"
