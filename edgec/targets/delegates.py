"""Delegate coverage, statically: which ops a GPU / NNAPI delegate would not take (by the profile's
``delegate_constraints``: an op allow-list, op-version limits, rank/batch limits, tensor types,
hybrid ops) and the share of ops and of MACs that stay on the CPU.

This reads the graph only; what a given phone's driver accepts can be narrower. Every CPU/GPU
hand-over costs a synchronization, so the number of delegated partitions is reported too.
"""

from __future__ import annotations

from edgec.formats.opgraph import OpCost


def _reasons(o: OpCost, dc: dict) -> list[str]:
    why = []
    if o.op not in dc["ops"]:
        why.append("not in the delegate's op list")
    limit = dc.get("max_versions", {}).get(o.op)
    if limit is not None and o.version > limit:
        why.append(f"version {o.version} > {limit}")
    live = [(s, t) for s, t, c in zip(o.in_shapes, o.in_dtypes, o.in_const or [False] * len(o.in_shapes)) if not c]
    live += list(zip(o.out_shapes, o.out_dtypes))
    max_rank = dc.get("max_rank")
    if max_rank and any(len(s) > max_rank for s, _ in live):
        why.append(f"a tensor of rank {max(len(s) for s, _ in live)} > {max_rank}")
    max_batch = dc.get("max_batch")
    if max_batch and any(len(s) >= 2 and s[0] > max_batch for s, _ in live):
        why.append(f"batch > {max_batch}")
    dtypes = dc.get("dtypes")
    if dtypes:
        bad = sorted({t for _, t in live if t not in dtypes})
        if bad:
            why.append(f"tensor type {', '.join(bad)}")
    if o.hybrid and not dc.get("hybrid", False):
        why.append("dynamic-range (hybrid) op: int8 weights with float activations")
    return why


def coverage(ops: list[OpCost], constraints: dict, delegate: str) -> dict:
    """The coverage report of one graph for one delegate."""
    counted = [o for o in ops if o.kind != "layout" or o.op not in constraints["ops"]]
    on_cpu, partitions, in_delegate = [], 0, False
    for o in counted:
        why = _reasons(o, constraints)
        if why:
            on_cpu.append({"op": o.op, "version": o.version, "node": o.node, "macs": o.macs, "reasons": why})
            in_delegate = False
        elif not in_delegate:
            partitions += 1
            in_delegate = True
    total_macs = sum(o.macs for o in counted) or 1
    cpu_macs = sum(r["macs"] for r in on_cpu)
    by_op: dict[str, int] = {}
    for r in on_cpu:
        by_op[r["op"]] = by_op.get(r["op"], 0) + 1
    return {"delegate": delegate, "source": constraints.get("source", ""), "ops_total": len(counted),
            "ops_on_cpu": len(on_cpu), "share_ops_on_cpu": round(len(on_cpu) / max(len(counted), 1), 4),
            "share_macs_on_cpu": round(cpu_macs / total_macs, 4), "delegated_partitions": partitions,
            "fully_delegated": not on_cpu, "ops_on_cpu_by_type": by_op, "cpu_ops": on_cpu[:50],
            "static": True}


def coverage_for(path, target) -> dict | None:
    """None for profiles without delegate constraints (CPU targets)."""
    if not target.delegate_constraints:
        return None
    from edgec.formats.opgraph import read_op_costs

    return coverage(read_op_costs(path), target.delegate_constraints, target.runtime.delegate)
