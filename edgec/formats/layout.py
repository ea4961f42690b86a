"""Tensor layouts: how a converted model's tensor relates to the source's (NCHW <-> NHWC).

Pure shape logic, shared by the converters (which record each tensor's layout) and the runners
(which feed source-layout arrays to a channels-last model and turn its outputs back).
"""

from __future__ import annotations


def layout_perm(src_shape, dst_shape, hinted_nhwc: bool | None = None):
    """The permutation p with dst == src[p], preferring channels-last when both fit."""
    src, dst = list(src_shape), list(dst_shape)
    rank = len(src)
    last = [0, *range(2, rank), 1] if rank >= 3 else list(range(rank))
    if rank >= 3 and [src[i] for i in last] == dst and (hinted_nhwc or src != dst):
        return last
    if src == dst or any(d is None for d in dst):
        return list(range(rank))
    if rank >= 3 and [src[i] for i in last] == dst:
        return last
    return None


def layout_name(perm, rank: int, keep: str = "") -> str | None:
    if rank == 4:
        return "NHWC" if perm == [0, 2, 3, 1] else "NCHW"
    if rank == 3:
        return "NWC" if perm == [0, 2, 1] else "NCW"
    return keep or None
