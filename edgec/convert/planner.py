"""Finding a route through the format graph (cheapest path over registered converters)."""

from __future__ import annotations

import heapq

from edgec.convert import Converter, converters
from edgec.errors import UsageError
from edgec.formats import Format, TORCH_FORMATS


def _parse_format(name: str) -> Format:
    aliases = {"pt": Format.TORCHSCRIPT, "torch": None, "tf": Format.SAVED_MODEL, "savedmodel": Format.SAVED_MODEL,
               "pt2": Format.EXPORTED_PROGRAM, "h5": Format.KERAS}
    key = name.strip().lower().replace("-", "_")
    if key in aliases and aliases[key] is not None:
        return aliases[key]
    try:
        return Format(key)
    except ValueError:
        raise UsageError(f"--route names unknown format '{name}'",
                         hint=f"formats: torch, {', '.join(f.value for f in Format)}") from None


def plan(src: Format, dst: Format, forced: tuple[str, ...] | None = None) -> list[Converter]:
    """The converters from ``src`` to ``dst``: the cheapest path, or the forced ``--route``."""
    edges = converters()
    if forced:
        return _forced(src, dst, forced, edges)
    if src == dst:
        return []
    best: dict[Format, float] = {src: 0.0}
    heap: list[tuple[float, int, Format, list[Converter]]] = [(0.0, 0, src, [])]
    counter = 0
    while heap:
        cost, _, node, path = heapq.heappop(heap)
        if node == dst:
            return path
        for e in edges:
            if e.src != node:
                continue
            c = cost + e.cost
            if c < best.get(e.dst, float("inf")):
                best[e.dst] = c
                counter += 1
                heapq.heappush(heap, (c, counter, e.dst, path + [e]))
    raise UsageError(f"no route from {src.value} to {dst.value}",
                     hint="edgec converts PyTorch, ONNX, SavedModel and Keras to TFLite")


MAX_EDGES = 4  # no sensible route to TFLite is longer


def paths(src: Format, dst: Format) -> list[list[Converter]]:
    """Every simple path (no format twice) from ``src`` to ``dst``, cheapest first; ties keep the
    registry's order. These are the route search's base candidates (``edgec.convert.routes``)."""
    edges = converters()
    found: list[tuple[float, int, list[Converter]]] = []

    def walk(node: Format, path: list[Converter], seen: set[Format]) -> None:
        if node == dst and path:
            found.append((sum(e.cost for e in path), len(found), list(path)))
            return
        if len(path) >= MAX_EDGES:
            return
        for e in edges:
            if e.src == node and e.dst not in seen:
                walk(e.dst, path + [e], seen | {e.dst})

    walk(src, [], {src})
    return [p for _, _, p in sorted(found, key=lambda t: (t[0], t[1]))]


def _forced(src: Format, dst: Format, forced: tuple[str, ...], edges: list[Converter]) -> list[Converter]:
    names = list(forced)
    fmts: list[Format] = []
    for n in names:
        if n.strip().lower() == "torch":
            fmts.append(src if src in TORCH_FORMATS else Format.TORCH_MODULE)
        else:
            fmts.append(_parse_format(n))
    if fmts[0] != src:
        fmts.insert(0, src)
    if fmts[-1] != dst:
        raise UsageError(f"--route must end at {dst.value}, not {fmts[-1].value}")
    path = []
    for a, b in zip(fmts, fmts[1:]):
        e = next((e for e in edges if e.src == a and e.dst == b), None)
        if e is None:
            have = ", ".join(f"{x.src.value}->{x.dst.value}" for x in edges)
            raise UsageError(f"--route step {a.value}->{b.value} has no converter", hint=f"edges: {have}")
        path.append(e)
    return path
