"""``--parity-on-device``: the build's validation inputs through each TFLite variant on the board,
as ledger rows "tflite:VARIANT on DEVICE", compared with the source and with the host's TFLite run
of the same variant (the delegate / old-runtime drift users hit).

The host does the tensor bookkeeping it does for its own TFLite runs (``validate.runners.
TFLiteRunner``: names, NCHW<->NHWC, quantized I/O); the board only sets raw tensors, invokes and
returns raw outputs (``device_runner.py``'s ``outputs`` task), so both runs see the same bytes.
"""

from __future__ import annotations

import tempfile
from pathlib import Path

from edgec.errors import UsageError


def wanted(build) -> dict | None:
    spec = getattr(build.cfg, "device", None) or {}
    return spec if spec.get("parity") and getattr(build, "final_ledger", False) else None


def device_stages(build, plan, feeds: Path, work: Path, numbers: dict, with_metrics) -> None:
    """Add a "NAME on DEVICE" stage after every TFLite stage of the ledger (in ``numbers``);
    ``with_metrics`` is the ledger's comparison of a stage's outputs with the source's."""
    spec = wanted(build)
    if spec is None:
        return
    from edgec.formats import Format
    from edgec.bench.connect import make_device

    device = make_device(spec)
    if not hasattr(device, "outputs"):
        raise UsageError("--parity-on-device needs an ssh:// board: adb's benchmark_model returns no outputs",
                         where=device.name)
    order = numbers["order"]
    for row in [r for r in plan.rows if r["artifact"].format is Format.TFLITE]:
        name = row["name"]
        here = f"{name} on {device.name}"
        with build.progress.step(f"parity: {here}"):
            rec = run_on_device(device, build, row, plan, feeds, work / here)
        rec["previous"] = name  # compared with the source and with the host's run of the same variant
        numbers["stages"][here] = with_metrics(rec, work, here, None)
        order.insert(order.index(name) + 1, here)


def run_on_device(device, build, row: dict, plan, feeds: Path, out: Path) -> dict:
    import numpy as np

    from edgec.errors import DeviceError, UnsupportedModelError
    from edgec.runtime.runners import TFLiteRunner, _back, _to
    from edgec.runtime.isolated import ArrayStore, read_feeds

    runner = TFLiteRunner(Path(row["artifact"].path), plan.inputs, plan.outputs, build.target.threads_here(),
                          row["hints"], io_map=row["io_map"])
    raw, n = {}, 0
    for i, feed in enumerate(read_feeds(feeds)):
        for p in runner.in_pairs:
            raw[f"{i}/{p['name']}"] = np.ascontiguousarray(runner._in(p["name"], _to(feed[p["source"]], p["perm"])))
        n = i + 1
    keys = [p["name"] for p in runner.in_pairs]
    cores = device.describe().get("cores") or 1
    threads = min(build.target.runtime.threads or cores, cores)
    signature = "serving_default" if runner.sig is not None else None
    with tempfile.TemporaryDirectory(prefix="edgec-devparity-") as tmp:
        np.savez(Path(tmp) / "feeds.npz", **raw)
        try:
            res = device.outputs(Path(row["artifact"].path), Path(tmp) / "feeds.npz", n, keys, signature, threads,
                                 Path(tmp) / "outputs.npz")
        except UnsupportedModelError as exc:  # the board's runtime cannot load this variant: a finding
            return {"error": exc.what, "runtime": f"on {device.name}"}
        except DeviceError:
            raise
        got = np.load(Path(tmp) / "outputs.npz")
        store = ArrayStore(out, n)
        for i in range(n):
            ys = [runner._fit(p, _back(runner._out(p["name"], got[f"{i}/{p['name']}"]), p["perm"]))
                  for p in runner.out_pairs]
            store.put(i, ys)
        store.close()
    return {"samples": n, "outputs": len(runner.out_pairs), "infer_seconds": res.get("infer_seconds"),
            "runtime": f"{res['runtime']} {res['runtime_version']} on {device.name}, default delegate, "
                       f"{res['threads']} thread(s)"}
