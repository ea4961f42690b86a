"""Run a model in a child process, so that an interpreter which aborts (litert has SIGABRTed in
``allocate_tensors`` on int16-activation models) or hangs becomes an error for that model while the
caller, and the rest of its ledger, carries on.

The parent writes a JSON task; the child (``python -m edgec.cli.worker TASK``) runs it and writes
a JSON result; arrays travel as ``.npz`` files named in the task. A child killed by a signal, one
that exits non-zero or one that runs past its time limit gives ``{"error": ...}`` naming what
happened, with the tail of its stderr.
"""

from __future__ import annotations

import json
import os
import signal
import subprocess
import sys
import tempfile
import time
from pathlib import Path

TIMEOUT_S = 900


def run_task(task: dict, timeout: float = TIMEOUT_S, command: list[str] | None = None) -> dict:
    """Run ``task`` in a fresh interpreter process; return its result or ``{"error": ...}``."""
    with tempfile.TemporaryDirectory(prefix="edgec-worker-") as d:
        job, result = Path(d) / "task.json", Path(d) / "result.json"
        job.write_text(json.dumps({**task, "result": str(result)}, default=str))
        cmd = (command or [sys.executable, "-m", "edgec.cli.worker"]) + [str(job)]
        t0 = time.perf_counter()
        try:
            proc = subprocess.run(cmd, capture_output=True, text=True, timeout=timeout, env=_env())
        except subprocess.TimeoutExpired:
            return {"error": f"the worker ran past its {timeout:.0f} s limit and was killed", "crashed": True}
        tail = _tail(proc.stderr)
        if proc.returncode < 0:
            name = _signal_name(-proc.returncode)
            return {"error": f"the interpreter process died with {name} (exit {proc.returncode}); "
                             f"stderr: {tail}", "crashed": True, "signal": name}
        if proc.returncode != 0 or not result.is_file():
            return {"error": f"the worker failed (exit {proc.returncode}): {tail}", "crashed": True}
        out = json.loads(result.read_text())
        out.setdefault("seconds", round(time.perf_counter() - t0, 3))
        return out


def _env() -> dict:
    """The child imports this same edgec, wherever it was imported from."""
    root = str(Path(__file__).resolve().parents[2])
    env = dict(os.environ)
    env["PYTHONPATH"] = root + (os.pathsep + env["PYTHONPATH"] if env.get("PYTHONPATH") else "")
    env.setdefault("TF_CPP_MIN_LOG_LEVEL", "3")
    return env


def _signal_name(num: int) -> str:
    try:
        return signal.Signals(num).name
    except ValueError:
        return f"signal {num}"


def _tail(text: str, n: int = 300) -> str:
    lines = [ln.strip() for ln in (text or "").splitlines() if ln.strip() and "UserWarning" not in ln
             and "warnings.warn" not in ln and not ln.startswith("INFO:")]
    picked = " | ".join(lines[-3:])
    return picked[-n:] if picked else "(no output)"


# -- arrays on disk: one memory-mappable .npy per tensor, samples stacked on a new first axis ------

class ArrayStore:
    """``dir/<k>.npy`` per tensor k, shape [N, *sample shape], written sample by sample and read
    back memory-mapped, so neither side holds more than a sample of every tensor."""

    def __init__(self, path: Path, n: int | None = None):
        self.path, self.n = Path(path), n
        self.path.mkdir(parents=True, exist_ok=True)
        self._files: dict = {}

    def put(self, i: int, arrays: list) -> None:
        import numpy as np

        for k, a in enumerate(arrays):
            a = np.asarray(a)
            if k not in self._files:
                self._files[k] = np.lib.format.open_memmap(self.path / f"{k}.npy", mode="w+", dtype=a.dtype,
                                                           shape=(self.n, *a.shape))
            self._files[k][i] = a

    def close(self) -> None:
        for f in self._files.values():
            f.flush()
        self._files.clear()

    def count(self) -> int:
        return len(list(self.path.glob("*.npy")))

    def get(self, i: int) -> list:
        import numpy as np

        return [np.array(np.load(self.path / f"{k}.npy", mmap_mode="r")[i]) for k in range(self.count())]

    def samples(self) -> int:
        import numpy as np

        return int(np.load(self.path / "0.npy", mmap_mode="r").shape[0]) if self.count() else 0


def write_feeds(path: Path, names: list[str], feeds) -> Path:
    """Samples (dicts keyed by input name) to an ArrayStore plus ``names.json``."""
    feeds = list(feeds)
    store = ArrayStore(path, len(feeds))
    for i, feed in enumerate(feeds):
        store.put(i, [feed[n] for n in names])
    store.close()
    (Path(path) / "names.json").write_text(json.dumps(names))
    return Path(path)


def read_feeds(path: Path, limit: int | None = None):
    names = json.loads((Path(path) / "names.json").read_text())
    store = ArrayStore(path)
    n = store.samples() if limit is None else min(limit, store.samples())
    for i in range(n):
        yield dict(zip(names, store.get(i)))


# -- the child ------------------------------------------------------------------------------------

def _tflite_outputs(task: dict) -> dict:
    """Run a .tflite on every sample of ``task['inputs']``; write the outputs stacked per output."""
    import numpy as np

    from ..formats import TensorSpec
    from .runners import TFLiteRunner

    runner = TFLiteRunner(Path(task["model"]), [TensorSpec.from_dict(d) for d in task["source_inputs"]],
                          [TensorSpec.from_dict(d) for d in task["source_outputs"]], task.get("threads", 0),
                          task.get("out_hints"), reference_kernels=task.get("reference_kernels", False),
                          io_map=task.get("io_map"))
    feeds = ArrayStore(Path(task["inputs"]))
    n = feeds.samples()
    store = ArrayStore(Path(task["outputs"]), n)
    t0 = time.perf_counter()
    outputs = 0
    for i, feed in enumerate(read_feeds(Path(task["inputs"]))):
        ys = [np.asarray(y) for y in runner.infer(feed)]
        store.put(i, ys)
        outputs = len(ys)
    store.close()
    return {"samples": n, "outputs": outputs, "infer_seconds": round(time.perf_counter() - t0, 3)}


def _layers(task: dict) -> dict:
    from .localize import run_layer_task

    return run_layer_task(task)


TASKS = {"tflite_outputs": _tflite_outputs, "layers": _layers}


def main(argv: list[str]) -> int:
    task = json.loads(Path(argv[0]).read_text())
    from ..errors import EdgecError

    try:
        result = TASKS[task["task"]](task)
    except EdgecError as exc:
        result = {"error": exc.one_line()}
    except Exception as exc:  # reported to the parent as this model's error, not a crash of the ledger
        result = {"error": f"{type(exc).__name__}: {str(exc)[:400]}"}
    Path(task["result"]).write_text(json.dumps(result, default=float))
    return 0

