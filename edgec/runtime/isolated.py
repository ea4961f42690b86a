"""Run a model in a child process, so that an interpreter which aborts (litert has SIGABRTed in
``allocate_tensors`` on int16-activation models; onnxruntime dies with SIGFPE on an integer division
by zero) or hangs becomes an error for that model while the caller, and the rest of its ledger,
carries on. Every framework run of a user's model during a build goes through here: TFLite
(``tflite_outputs``), the source, ONNX, SavedModel and Keras stages (``framework_outputs``, several
stages of one framework family in one child) and layer localization (``layers``).

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
    return start_task(task, timeout, command).wait()


class Job:
    """A task running in a child process; ``wait`` gives its result (or the error naming how it died).
    Output goes to files, not pipes, so a job can run in the background without being read."""

    def __init__(self, task: dict | None, timeout: float = TIMEOUT_S, command: list[str] | None = None,
                 preload: str = ""):
        self._dir = tempfile.TemporaryDirectory(prefix="edgec-worker-")
        d = Path(self._dir.name)
        self.timeout, self.result, self.job = timeout, d / "result.json", d / "task.json"
        if task is not None:
            self._write(task)
        cmd = (command or [sys.executable, "-m", "edgec.cli.worker"]) + \
            ([str(self.job)] if task is not None else ["--standby", str(self.job), preload])
        self._err = open(d / "stderr.txt", "w+")
        self.t0 = time.perf_counter()
        self.proc = subprocess.Popen(cmd, stdout=subprocess.DEVNULL, stderr=self._err, text=True, env=_env())

    def _write(self, task: dict) -> None:
        tmp = self.job.with_suffix(".tmp")
        tmp.write_text(json.dumps({**task, "result": str(self.result)}, default=str))
        os.replace(tmp, self.job)  # a standby child sees the whole task or none

    def submit(self, task: dict) -> bool:
        """Hand ``task`` to a standby child (started with ``preload`` imports done); False if it died."""
        if self.proc.poll() is not None:
            self.kill()
            return False
        self.t0 = time.perf_counter()
        self._write(task)
        return True

    def kill(self) -> None:
        if self.proc.poll() is None:
            self.proc.kill()
            self.proc.wait()
        self._close()

    def _close(self) -> None:
        if not self._err.closed:
            self._err.close()
        self._dir.cleanup()

    def wait(self) -> dict:
        try:
            return self._wait()
        finally:
            self._close()

    def _wait(self) -> dict:
        left = self.timeout - (time.perf_counter() - self.t0)
        try:
            code = self.proc.wait(timeout=max(left, 0.01))
        except subprocess.TimeoutExpired:
            self.proc.kill()
            self.proc.wait()
            self._err.seek(0)
            _relay(self._err.read(), self.proc.pid)
            return {"error": f"the worker ran past its {self.timeout:.0f} s limit and was killed", "crashed": True,
                    "signal": "timeout"}
        self._err.seek(0)
        err = self._err.read()
        _relay(err, self.proc.pid)
        tail = _tail(err)
        if code < 0:
            name = _signal_name(-code)
            return {"error": f"the interpreter process died with {name} (exit {code}); "
                             f"stderr: {tail}", "crashed": True, "signal": name}
        if code != 0 or not self.result.is_file():
            return {"error": f"the worker failed (exit {code}): {tail}", "crashed": True}
        out = json.loads(self.result.read_text())
        out.setdefault("seconds", round(time.perf_counter() - self.t0, 3))
        return out


def start_task(task: dict, timeout: float = TIMEOUT_S, command: list[str] | None = None,
               family: str | None = None) -> Job:
    """Start ``task`` in a child process and return at once; ``Job.wait()`` gives the result. A
    standby child of ``family`` (see ``prewarm``) takes it if one is waiting."""
    standby = _STANDBY.pop(family, None) if family and command is None else None
    if standby is not None:
        standby.timeout = timeout
        if standby.submit(task):
            return standby
    return Job(task, timeout, command)


# Framework families and what their children import before a task arrives. A child started at the
# beginning of a build pays torch's (~1 s) and TensorFlow's (~4 s) imports while the converters run,
# not when the ledger needs it.
PRELOAD = {"torch/onnxruntime": "numpy,onnxruntime,torch", "onnxruntime": "numpy,onnxruntime",
           "tensorflow": "numpy,tensorflow"}
_STANDBY: dict[str, Job] = {}


def prewarm(families: dict[str, str]) -> None:
    """Start one standby child per family (``{family: preload key of PRELOAD}``); each imports its
    frameworks, then waits for its task file."""
    for fam, preload in families.items():
        if fam not in _STANDBY:
            _STANDBY[fam] = Job(None, preload=PRELOAD.get(preload, "numpy"))


def release() -> None:
    """Stop the standby children no task took."""
    while _STANDBY:
        _STANDBY.popitem()[1].kill()


def _env() -> dict:
    """The child imports this same edgec, wherever it was imported from. Its frameworks keep quiet
    (``edgec.logs.quiet_env``) unless ``--debug``, where they log at their own defaults."""
    from edgec import logs

    root = str(Path(__file__).resolve().parents[2])
    env = dict(os.environ)
    env["PYTHONPATH"] = root + (os.pathsep + env["PYTHONPATH"] if env.get("PYTHONPATH") else "")
    logs.quiet_env(env)
    if logs.enabled():
        env.setdefault("TF_CPP_MIN_LOG_LEVEL", "0")  # TensorFlow's default; the worker's own is 3
    return env


def _relay(text: str, pid: int) -> None:
    """``--debug``: the child's stderr, whole, on ours (a normal run keeps it for the error only)."""
    from edgec import logs

    if logs.enabled() and text.strip():
        sys.stderr.write("".join(f"[worker {pid}] {ln}\n" for ln in text.splitlines()))
        sys.stderr.flush()


def _signal_name(num: int) -> str:
    try:
        return signal.Signals(num).name
    except ValueError:
        return f"signal {num}"


def _tail(text: str, n: int = 300) -> str:
    """The last lines of a child's stderr that say something: framework notes (``edgec.logs.NOISE``)
    and Python warnings left out."""
    from edgec.logs import is_noise

    lines = [ln.strip() for ln in (text or "").splitlines() if ln.strip() and "UserWarning" not in ln
             and "warnings.warn" not in ln and not ln.startswith("INFO:") and not is_noise(ln)]
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

    from edgec.formats import TensorSpec
    from edgec.runtime.runners import TFLiteRunner

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


CRASH_HOOK = "EDGEC_TEST_CRASH_STAGE"  # tests only: the stage named here kills its worker with SIGFPE


def _framework_outputs(task: dict) -> dict:
    """Run the framework stages ``task['stages']`` (the source in torch/onnxruntime/TF/Keras, the
    ONNX, the SavedModel) one after another in this process, each on every sample. A line is
    appended to ``task['progress']`` as each starts and ends, so that a parent whose child died
    knows which stage killed it; an exception is that stage's error and the next stage runs."""
    from edgec.errors import EdgecError

    sys.path.extend(p for p in task.get("sys_path", []) if p not in sys.path)  # a factory's own modules
    records = {}
    for st in task["stages"]:
        _mark(task, {"stage": st["name"], "started": True})
        try:
            rec = _run_stage(task, st)
        except EdgecError as exc:
            rec = {"error": exc.one_line()}
        except Exception as exc:  # this stage's error; the parent decides what it means
            rec = {"error": f"{type(exc).__name__}: {str(exc)[:400]}"}
        records[st["name"]] = rec
        _mark(task, {"stage": st["name"], "record": rec})
    return {"stages": records}


def _mark(task: dict, line: dict) -> None:
    with open(task["progress"], "a") as f:
        f.write(json.dumps(line, default=float) + "\n")


def _run_stage(task: dict, st: dict) -> dict:
    from edgec.formats import TORCH_FORMATS, Format, TensorSpec
    from edgec.runtime.runners import runner_for

    fmt, path = Format(st["format"]), Path(st["path"])
    module = None
    if fmt in TORCH_FORMATS:
        from edgec.runtime.loaders import load_torch

        module = load_torch(path, fmt, trust_pickle=True)  # the parent refused an untrusted pickle already
    import numpy as np

    # Inputs ``--input-value`` fixed: the later stages no longer have them; the source still does.
    constants = {k: np.asarray(v["value"], dtype=v["dtype"]) for k, v in (st.get("constants") or {}).items()}
    specs = [TensorSpec.from_dict(d) for d in st.get("source_inputs") or task["source_inputs"]]
    runner = runner_for(fmt, path, source_inputs=specs,
                        source_outputs=[TensorSpec.from_dict(d) for d in task["source_outputs"]],
                        io_map=st.get("io_map"), torch_module=module, threads=task.get("threads", 0),
                        out_hints=st.get("hints"))
    if os.environ.get(CRASH_HOOK) == st["name"]:
        os.kill(os.getpid(), signal.SIGFPE)
    store = ArrayStore(Path(st["outputs"]), ArrayStore(Path(task["inputs"])).samples())
    t0 = time.perf_counter()
    for i, feed in enumerate(read_feeds(Path(task["inputs"]))):
        if constants:
            feed = {s.name: (constants[s.name] if s.name in constants else feed[s.name]) for s in specs}
        store.put(i, runner.infer(feed))
    store.close()
    return {"runtime": runner.name, "infer_seconds": round(time.perf_counter() - t0, 3)}


def stage_progress(path: Path) -> tuple[dict, str | None]:
    """(records of the stages that finished, the stage that started and did not finish)."""
    done, running = {}, None
    for line in (Path(path).read_text().splitlines() if Path(path).is_file() else []):
        try:
            rec = json.loads(line)
        except ValueError:  # a line cut short by the crash
            continue
        if rec.get("started"):
            running = rec["stage"]
        else:
            done[rec["stage"]], running = rec["record"], None
    return done, running


def error_record(exc) -> dict:
    """An ``EdgecError`` as JSON-able data, so that a parent can raise the same error (its class,
    exit code and fields) with ``error_from``."""
    extra = {k: v for k, v in vars(exc).items() if k not in ("what", "where", "hint")
             and isinstance(v, (str, int, float, bool, list, dict, type(None)))}
    return {"class": type(exc).__name__, "what": exc.what, "where": exc.where, "hint": exc.hint, "extra": extra}


def error_from(result: dict):
    """The ``EdgecError`` a child recorded (``result["error_record"]``), or None."""
    rec = (result or {}).get("error_record")
    if not rec:
        return None
    from edgec import errors

    cls = getattr(errors, rec.get("class", ""), None)
    if not (isinstance(cls, type) and issubclass(cls, errors.EdgecError)):
        cls = errors.EdgecError
    exc = cls.__new__(cls)
    exc.__dict__.update(rec.get("extra") or {})
    exc.what, exc.where, exc.hint = rec.get("what", ""), rec.get("where"), rec.get("hint")
    Exception.__init__(exc, exc.one_line())
    return exc


# The tasks this layer runs; the worker's entry point (``edgec.cli.worker``) adds the ones of the
# layers above (``layers``: validate.localize's layer walk), which runtime must not import.
TASKS = {"tflite_outputs": _tflite_outputs, "framework_outputs": _framework_outputs}


def _standby(path: Path, preload: str, limit: float = 4 * 3600) -> bool:
    """Import ``preload`` (comma-separated modules), then wait for the task file; False on time-out."""
    import importlib

    from edgec.logs import captured

    with captured():
        for mod in filter(None, preload.split(",")):
            try:
                importlib.import_module(mod)
            except ImportError:
                pass  # the task itself will say what is missing
        importlib.import_module("edgec.runtime.runners")
    t0 = time.perf_counter()
    while not path.is_file():
        if time.perf_counter() - t0 > limit or os.getppid() == 1:  # the build is gone
            return False
        time.sleep(0.02)
    return True


def main(argv: list[str], tasks: dict | None = None) -> int:
    """Run the task file ``argv[0]`` (or wait for it: ``--standby FILE PRELOAD``) with ``TASKS`` and
    ``tasks`` (name -> function of the task dict)."""
    if argv and argv[0] == "--standby":
        if not _standby(Path(argv[1]), argv[2] if len(argv) > 2 else ""):
            return 0
        argv = [argv[1]]
    task = json.loads(Path(argv[0]).read_text())
    from edgec.errors import EdgecError

    try:
        result = {**TASKS, **(tasks or {})}[task["task"]](task)
    except EdgecError as exc:
        result = {"error": exc.one_line(), "error_record": error_record(exc)}
    except Exception as exc:  # reported to the parent as this model's error, not a crash of the ledger
        result = {"error": f"{type(exc).__name__}: {str(exc)[:400]}"}
    Path(task["result"]).write_text(json.dumps(result, default=float))
    return 0

