"""Planning the matrix: shards, ``--only``, and the groups of cells that share their conversion steps.

A build is a chain of content-keyed steps. Cells of one model whose conversion settings agree
produce identical step keys up to the per-variant steps, so they form one group: the group's first
cell (its leader) is started before any second cell of any group, and the cache's per-key lock makes
the others wait for a shared step instead of computing it again.
"""

from __future__ import annotations

import hashlib
import json

from edgec.errors import UsageError
from edgec.matrix.project import Cell

# The settings that key the shared conversion steps (export, canonicalize, onnx2tf); the target's
# own variants and budgets only key the per-variant steps.
SHARED = ("model", "factory", "input_shapes", "input_dtypes", "input_values", "exporter", "opset", "keep_layout",
          "trust_pickle")


def parse_shard(text: str | None) -> tuple[int, int] | None:
    if not text:
        return None
    i, sep, n = text.partition("/")
    try:
        i, n = int(i), int(n)
    except ValueError:
        i = n = 0
    if not sep or n < 1 or not 1 <= i <= n:
        raise UsageError(f"--shard '{text}' is not I/N with 1 <= I <= N", hint="e.g. --shard 1/4")
    return i, n


def _stable(name: str) -> str:
    return hashlib.sha256(name.encode()).hexdigest()


def shard_cells(cells: list[Cell], shard: tuple[int, int] | None) -> list[Cell]:
    """Shard I of N: cells ordered by a stable hash of their name and dealt round-robin, so shard
    sizes differ by at most one, shards never overlap and their union is the whole matrix."""
    if shard is None:
        return list(cells)
    i, n = shard
    ordered = sorted(cells, key=lambda c: _stable(c.name))
    return [c for k, c in enumerate(ordered) if k % n == i - 1]


def select_only(cells: list[Cell], only: list[str] | None) -> list[Cell]:
    if not only:
        return list(cells)
    names = {c.name for c in cells}
    bad = [o for o in only if o not in names]
    if bad:
        raise UsageError(f"--only {', '.join(bad)}: not a model@target of this project",
                         hint=f"cells: {', '.join(sorted(names))}")
    return [c for c in cells if c.name in set(only)]


def group_key(cell: Cell) -> str:
    return _stable(json.dumps({k: cell.config.get(k) for k in SHARED}, sort_keys=True, default=str))[:16]


def schedule(cells: list[Cell]) -> tuple[list[Cell], dict[str, list[str]]]:
    """The run order (every group's leader first, then the followers) and the groups."""
    groups: dict[str, list[Cell]] = {}
    for c in cells:
        groups.setdefault(group_key(c), []).append(c)
    leaders = [g[0] for g in groups.values()]
    followers = [c for g in groups.values() for c in g[1:]]
    return leaders + followers, {k: [c.name for c in g] for k, g in groups.items()}
