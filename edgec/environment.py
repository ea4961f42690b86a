"""The ground floor: edgec's version, the versions of the tools it drives, and the machine it runs on.

Every layer may import this module; it imports nothing from edgec.
"""

from __future__ import annotations

import functools
import os
import platform

__version__ = "0.1.0"  # the one place (pyproject.toml reads it)


ENV_PACKAGES = ("torch", "onnx", "onnxruntime", "onnx2tf", "tensorflow", "tf-keras", "keras", "tf2onnx",
                "ai-edge-litert", "onnxsim", "onnxscript", "numpy", "protobuf", "flatbuffers")


@functools.lru_cache(maxsize=None)
def version(dist: str) -> str:
    """The installed version of a distribution, or ``"not installed"``."""
    from importlib import metadata

    try:
        return metadata.version(dist)
    except metadata.PackageNotFoundError:
        return "not installed"


def installed(dist: str) -> str | None:
    """The installed version of a distribution, or None."""
    v = version(dist)
    return None if v == "not installed" else v


def tool_versions(dists) -> dict[str, str]:
    return {d: version(d) for d in dists}


def environment() -> dict:
    """The machine and the packages a build ran with (the manifest's ``environment``)."""
    return {"edgec": __version__, "python": platform.python_version(), "platform": platform.platform(),
            "machine": platform.machine(), "cpu_count": os.cpu_count(), "packages": tool_versions(ENV_PACKAGES)}
