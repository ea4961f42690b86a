"""Converters are the edges of the format graph; each module here registers one edge.

Adding a converter is one module (registering a ``Converter``) plus its test. The registry refuses a
second converter for the same name, and the planner in ``edgec.pipeline`` finds the route.
"""

from __future__ import annotations

import importlib
from dataclasses import dataclass, field
from pathlib import Path
from typing import Callable

from ..formats import Format, TensorSpec


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


_REGISTRY: dict[str, Converter] = {}



def register(conv: Converter) -> Converter:
    if conv.name in _REGISTRY:
        raise ValueError(f"converter '{conv.name}' is already registered")
    for other in _REGISTRY.values():
        if (other.src, other.dst) == (conv.src, conv.dst):
            raise ValueError(f"edge {conv.src.value}->{conv.dst.value} already has converter '{other.name}'")
    _REGISTRY[conv.name] = conv
    return conv


def converters() -> list[Converter]:
    """Every registered edge: each public module of this package registers one. Importing them is
    cheap: heavy imports happen inside ``run``."""
    import pkgutil

    for mod in pkgutil.iter_modules(__path__):
        if not mod.name.startswith("_"):
            importlib.import_module(f"{__name__}.{mod.name}")
    return list(_REGISTRY.values())
