"""Optional TensorBoard export of a build's numbers (``edgec report OUT --tensorboard DIR``), written
with TensorBoard's maintained event writer (``torch.utils.tensorboard``), one run per build."""

from __future__ import annotations

from pathlib import Path

from edgec.errors import require
from edgec.report.model import load_report


def export_tensorboard(builds: list[str], logdir: str) -> Path:
    tb = require("torch.utils.tensorboard", purpose="TensorBoard export (needs the tensorboard package)")
    import numpy as np

    root = Path(logdir)
    for build in builds:
        rep = load_report(build)
        run = root / Path(build).resolve().name
        writer = tb.SummaryWriter(log_dir=str(run))
        try:
            for step, r in enumerate(rep.variants):
                writer.add_scalar(f"size_kib/{r.variant}", r.bytes / 1024, 0)
                for key in ("p50_ms", "p90_ms", "est_p50_ms"):
                    if getattr(r, key) is not None:
                        writer.add_scalar(f"latency/{key}/{r.variant}", getattr(r, key), 0)
                if r.samples_ms:
                    writer.add_histogram(f"latency_samples_ms/{r.variant}", np.asarray(r.samples_ms), 0)
            for s in rep.stages:
                for o in s.outputs:
                    for metric in ("max_abs", "cosine", "snr_db", "top1"):
                        v = o.get(metric)
                        if isinstance(v, (int, float)) and np.isfinite(v):
                            writer.add_scalar(f"parity/{metric}/{s.stage}/{o.get('output', '')}", v, 0)
            writer.add_text("build", f"{rep.title}: route {' -> '.join(rep.manifest['route'])}", 0)
        finally:
            writer.close()
    return root
