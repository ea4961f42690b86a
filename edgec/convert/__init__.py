"""Converters are the edges of the format graph; each module here registers one edge.

Adding a converter is one module (registering a ``Converter``) plus its test. The registry refuses a
second converter for the same name, and the planner in ``edgec.pipeline.build`` finds the route.
"""

from __future__ import annotations

import importlib
from dataclasses import dataclass, field
from pathlib import Path
from typing import Callable

from edgec.formats import Format, TensorSpec


@dataclass
class StepContext:
    """What a converter gets: its input, where to write, the model's I/O and the build settings."""

    input: Path
    output: Path
    inputs: list[TensorSpec]            # the source model's inputs (source layout)
    settings: dict                      # only the settings this converter declared in ``uses``
    log: list[str] = field(default_factory=list)
    resources: dict = field(default_factory=dict)  # files a step reads whose digest is in ``settings``


@dataclass(frozen=True)
class Converter:
    name: str
    src: Format
    dst: Format
    run: Callable[[StepContext], dict]
    tools: tuple[str, ...]              # distributions whose versions key the cache and the manifest
    uses: tuple[str, ...] = ()          # build settings that change this converter's output
    cost: float = 1.0                   # planner weight; cross-check edges cost more
    description: str = ""
    env: str | None = None              # a converter environment (edgec.convert.envs) it runs in; None: edgec's
    calibrates: bool = False            # makes the calibrated variants (int8, int16x8) itself


_REGISTRY: dict[str, Converter] = {}



def register(conv: Converter) -> Converter:
    if conv.name in _REGISTRY:
        raise ValueError(f"converter '{conv.name}' is already registered")
    for other in _REGISTRY.values():
        if (other.src, other.dst) == (conv.src, conv.dst):
            raise ValueError(f"edge {conv.src.value}->{conv.dst.value} already has converter '{other.name}'")
    _REGISTRY[conv.name] = conv
    return conv


ENTRY_POINT_GROUP = "edgec.converters"
_PLUGINS: set[str] = set()  # entry points loaded so far


def converters() -> list[Converter]:
    """Every registered edge: each public module of this package registers one, and so does each
    installed package's ``edgec.converters`` entry point (see ``load_plugins``). Importing them is
    cheap: heavy imports happen inside ``run``."""
    import pkgutil

    for mod in pkgutil.iter_modules(__path__):
        if not mod.name.startswith("_"):
            importlib.import_module(f"{__name__}.{mod.name}")
    load_plugins()
    return list(_REGISTRY.values())


def load_plugins() -> None:
    """Register the converters of installed plugins. An entry point of group ``edgec.converters``
    names a ``Converter``, a list of them, a function returning either, or a module that calls
    ``register`` when imported. A plugin that cannot load, or whose edge another converter already
    has, is an error naming the plugin and its distribution, not a silent omission."""
    from importlib import metadata

    from edgec.errors import DependencyError

    for ep in metadata.entry_points(group=ENTRY_POINT_GROUP):
        key = f"{ep.name}={ep.value}"
        if key in _PLUGINS:
            continue
        dist = getattr(getattr(ep, "dist", None), "name", None) or "an installed package"
        try:
            obj = ep.load()
            found = obj() if callable(obj) and not isinstance(obj, Converter) else obj
            for conv in ([found] if isinstance(found, Converter) else
                         list(found) if isinstance(found, (list, tuple)) else []):
                if _REGISTRY.get(conv.name) is not conv:
                    register(conv)
        except Exception as exc:  # a plugin's import or registration failed: say which plugin
            raise DependencyError(f"converter plugin '{ep.name}' ({ep.value}, from {dist}) cannot be loaded: "
                                  f"{type(exc).__name__}: {exc}",
                                  hint=f"fix or uninstall {dist}; `pip show {dist}` says where it is") from exc
        _PLUGINS.add(key)
