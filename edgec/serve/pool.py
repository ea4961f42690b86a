"""Interpreters in worker processes, a pool per variant.

TFLite interpreters are not thread-safe, and a model can kill the process it runs in (litert has
SIGABRTed in ``allocate_tensors``; a bad kernel can SIGSEGV). So each variant gets ``workers``
child processes, each holding one ``edgec.validate.runners.TFLiteRunner`` (the runner the parity
ledger uses, with its quantized-I/O handling), and a request borrows one idle worker for one
inference. A worker that dies or hangs fails only the requests it was running (``WorkerDied``), is
counted, and is replaced in the background; the server keeps answering.

Arrays travel over a ``multiprocessing`` pipe (pickled; one copy each way). The children are
started with ``spawn``: a fresh interpreter, no threads or locks inherited from the server.
"""

from __future__ import annotations

import multiprocessing as mp
import queue
import signal
import threading
import time
from dataclasses import dataclass

import numpy as np

from ..errors import InputError, RuntimeCrashError
from .model import Variant

LOAD_TIMEOUT_S = 180.0


class WorkerDied(Exception):
    """The worker running this request died or hung; it is being replaced."""


class PoolBusy(Exception):
    """No worker of the variant became free in time."""


def _worker_main(conn, path: str, inputs: list, outputs: list, threads: int) -> None:  # pragma: no cover - child
    """Child process: load the variant once, then answer ("infer", feed) messages until None."""
    import os

    os.environ.setdefault("TF_CPP_MIN_LOG_LEVEL", "3")
    from ..formats import TensorSpec
    from ..native_log import captured
    from ..validate.runners import TFLiteRunner

    try:
        with captured():  # "INFO: Created TensorFlow Lite XNNPACK delegate for CPU."
            runner = TFLiteRunner(path, [TensorSpec(*t) for t in inputs], [TensorSpec(*t) for t in outputs],
                                  threads=threads)
            # Allocate and run once on zeros so that load-time crashes happen now, not on a request.
            runner.infer({n: np.zeros([d or 1 for d in s], dtype=t) for n, s, t in inputs})
    except Exception as exc:  # reported to the parent, which refuses to start
        conn.send(("error", f"{type(exc).__name__}: {exc}"))
        return
    conn.send(("ready", {k: (v[1], v[2]) for k, v in runner.quant.items()}))
    while True:
        try:
            msg = conn.recv()
        except (EOFError, OSError):
            return
        if msg is None:
            return
        try:
            t0 = time.perf_counter()
            outs = runner.infer(msg)
            conn.send(("ok", outs, time.perf_counter() - t0))
        except Exception as exc:
            conn.send(("error", f"{type(exc).__name__}: {exc}"))


@dataclass
class Result:
    outputs: list[np.ndarray]
    seconds: float      # the interpreter call inside the worker


class Worker:
    def __init__(self, ctx, variant: Variant, threads: int):
        self.variant = variant
        self.conn, child = ctx.Pipe()
        spec = lambda ts: [(t.name, tuple(t.shape), t.dtype) for t in ts]  # noqa: E731
        self.proc = ctx.Process(target=_worker_main, name=f"edgec-serve-{variant.name}", daemon=True,
                                args=(child, str(variant.path), spec(variant.inputs), spec(variant.outputs), threads))
        self.proc.start()
        child.close()
        self.quant: dict = {}

    @property
    def pid(self) -> int | None:
        return self.proc.pid

    def wait_ready(self, timeout: float) -> None:
        where = f"{self.variant.path} (variant {self.variant.name})"
        if not self.conn.poll(timeout):
            self.kill()
            raise RuntimeCrashError(f"the worker did not load the model within {timeout:.0f} s", where=where)
        try:
            msg = self.conn.recv()
        except (EOFError, OSError):
            self.proc.join(5)
            raise RuntimeCrashError(f"the worker died while loading the model ({exit_reason(self.proc.exitcode)})",
                                    where=where, hint="leave this variant out with --variants") from None
        if msg[0] != "ready":
            self.kill()
            raise InputError(f"the runtime refused the model: {msg[1]}", where=where,
                             hint="leave this variant out with --variants")
        self.quant = msg[1]

    def call(self, feed: dict[str, np.ndarray], timeout: float) -> Result:
        try:
            self.conn.send(feed)
            if not self.conn.poll(timeout):
                self.kill()
                raise WorkerDied(f"variant '{self.variant.name}' ran past the {timeout:.0f} s request time limit; "
                                 "its worker was stopped and is being replaced")
            msg = self.conn.recv()
        except (EOFError, OSError, BrokenPipeError):
            self.proc.join(5)
            raise WorkerDied(f"variant '{self.variant.name}''s worker died while running this request "
                             f"({exit_reason(self.proc.exitcode)}); it is being replaced") from None
        if msg[0] == "ok":
            return Result(msg[1], msg[2])
        raise RuntimeError(msg[1])

    def alive(self) -> bool:
        return self.proc.is_alive()

    def kill(self) -> None:
        if self.proc.is_alive():
            self.proc.kill()
        self.proc.join(5)

    def stop(self) -> None:
        try:
            self.conn.send(None)
        except (OSError, BrokenPipeError):
            pass
        self.proc.join(5)
        self.kill()
        self.conn.close()


def exit_reason(code: int | None) -> str:
    if code is None:
        return "still running"
    if code < 0:
        try:
            return f"killed by {signal.Signals(-code).name}"
        except ValueError:
            return f"killed by signal {-code}"
    return f"exit code {code}"


class VariantPool:
    """``workers`` processes for one variant; ``run`` borrows an idle one for one inference."""

    def __init__(self, ctx, variant: Variant, workers: int, threads: int, on_restart=None):
        self.ctx, self.variant, self.threads = ctx, variant, threads
        self.size = workers
        self.idle: queue.Queue[Worker] = queue.Queue()
        self.all: list[Worker] = []
        self.serving: set[int] = set()   # ids of loaded workers that have not died
        self.restarts = 0
        self.on_restart = on_restart
        self._lock = threading.Lock()
        self._closing = False

    def start(self) -> list[Worker]:
        started = [Worker(self.ctx, self.variant, self.threads) for _ in range(self.size)]
        self.all.extend(started)
        return started

    def ready(self, workers: list[Worker]) -> None:
        for w in workers:
            self.serving.add(id(w))
            self.idle.put(w)
        self.variant.quant = workers[0].quant if workers else {}

    @property
    def alive(self) -> int:
        return sum(w.alive() for w in self.all)

    def run(self, feed: dict[str, np.ndarray], timeout: float) -> Result:
        try:
            w = self.idle.get(timeout=timeout)
        except queue.Empty:
            raise PoolBusy(f"no worker of variant '{self.variant.name}' became free within {timeout:.0f} s") from None
        try:
            res = w.call(feed, timeout)
        except WorkerDied:
            self._replace(w)
            raise
        except BaseException:
            self.idle.put(w)
            raise
        self.idle.put(w)
        return res

    def _replace(self, dead: Worker) -> None:
        """Start a new worker in the background; it joins the idle queue once loaded."""
        self.serving.discard(id(dead))

        def go():
            dead.kill()
            while not self._closing:
                w = Worker(self.ctx, self.variant, self.threads)
                with self._lock:
                    self.all = [x for x in self.all if x is not dead] + [w]
                try:
                    w.wait_ready(LOAD_TIMEOUT_S)
                except Exception:
                    time.sleep(1.0)
                    continue
                self.restarts += 1
                self.serving.add(id(w))
                if self.on_restart:
                    self.on_restart(self.variant.name)
                self.idle.put(w)
                return

        threading.Thread(target=go, name=f"edgec-serve-restart-{self.variant.name}", daemon=True).start()

    def close(self) -> None:
        self._closing = True
        for w in list(self.all):
            w.stop()


class Pools:
    """One ``VariantPool`` per variant, started together (their models load in parallel)."""

    def __init__(self, variants: dict[str, Variant], workers: int, threads: int, on_restart=None):
        self.ctx = mp.get_context("spawn")
        self.pools = {name: VariantPool(self.ctx, v, workers, threads, on_restart) for name, v in variants.items()}

    def start(self) -> None:
        started = {name: p.start() for name, p in self.pools.items()}
        try:
            for name, ws in started.items():
                for w in ws:
                    w.wait_ready(LOAD_TIMEOUT_S)
                self.pools[name].ready(ws)
        except BaseException:
            self.close()
            raise

    def ready(self) -> bool:
        return all(p.serving for p in self.pools.values())

    def pids(self) -> dict[str, list[int]]:
        return {name: [w.pid for w in p.all if w.alive()] for name, p in self.pools.items()}

    def close(self) -> None:
        for p in self.pools.values():
            p.close()
