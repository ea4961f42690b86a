"""Interpreters in worker processes (or, with ``--in-process``, threads), a pool per variant.

TFLite interpreters are not thread-safe, and a model can kill the process it runs in (litert has
SIGABRTed in ``allocate_tensors``; a bad kernel can SIGSEGV). So each variant gets ``workers``
child processes, each holding one ``edgec.runtime.runners.TFLiteRunner`` (the runner the parity
ledger uses, with its quantized-I/O handling), and a request borrows one idle worker for one
inference. A model the runtime cannot load (a custom op without a kernel) is that runner's
documented error, raised here by ``wait_ready``: the server does not start. A worker that dies or hangs fails only the requests it was running (``WorkerDied``), is
counted, and is replaced in the background; the server keeps answering.

Arrays travel through shared memory (or the pipe, pickled). The children are started with
``spawn``: a fresh interpreter, no threads or locks inherited from the server.

``ThreadWorker`` (``edgec serve --in-process``) keeps the interpreter in the server's own process, on
a thread of its own: no process hop and no copies through shared memory, so a request costs less,
but there is no isolation either: a runtime that crashes takes the server down with it, and an
inference past the time limit cannot be stopped (its thread is abandoned and a fresh interpreter
replaces it). When it is the only request in flight in the whole server, and the variant's last
inference took under a quarter of the time limit, an inference runs right on the event loop's
thread instead (the limit is then not enforced on it; a lone request that far inside it is not
expected to need it): handing it to another thread and back costs two cross-thread
wake-ups, which measured ~1.7 ms of a 13 ms EfficientNet-Lite0 request on this 2-core VM, and no
other request is waiting for the loop then (one that arrives meanwhile waits at most that one
inference).
"""

from __future__ import annotations

import asyncio
import collections
import multiprocessing as mp
import os
import queue
import signal
import threading
import time
from concurrent.futures import Future
from concurrent.futures import TimeoutError as FutureTimeout
from dataclasses import dataclass

import numpy as np

from edgec.errors import EdgecError, InputError, RuntimeCrashError
from edgec.runtime.isolated import error_from
from edgec.serve.model import Variant

LOAD_TIMEOUT_S = 180.0


class WorkerDied(Exception):
    """The worker running this request died or hung; it is being replaced."""


class PoolBusy(Exception):
    """No worker of the variant became free in time."""


class Slots:
    """Views of one shared-memory block: every static input, then every static output, of one
    worker. A request whose arrays fit the slots travels as a memcpy and a one-word message instead
    of a pickle through the pipe (600 KB of EfficientNet input through a 64 KB pipe buffer costs
    several context switches each way)."""

    def __init__(self, buf, inputs: list, outputs: list):
        self.inputs, self.outputs, off = {}, [], 0
        for n, shape, dtype in inputs:
            off = self._add(buf, off, shape, dtype, lambda a, n=n: self.inputs.__setitem__(n, a))
        for _, shape, dtype in outputs:
            off = self._add(buf, off, shape, dtype, self.outputs.append)

    @staticmethod
    def _add(buf, off, shape, dtype, put) -> int:
        if any(d is None for d in shape):
            put(None)
            return off
        a = np.ndarray(tuple(shape), dtype=dtype, buffer=buf, offset=off) if buf is not None else None
        put(a)
        return off + (-(-int(np.prod(shape, dtype=np.int64)) * np.dtype(dtype).itemsize // 64) * 64)

    @staticmethod
    def size(inputs: list, outputs: list) -> int:
        return sum(
            -(-int(np.prod(s, dtype=np.int64)) * np.dtype(t).itemsize // 64) * 64
            for _, s, t in inputs + outputs if all(d is not None for d in s))

    def fits(self, feed: dict) -> bool:
        return all(self.inputs.get(k) is not None and v.shape == self.inputs[k].shape and
                   v.dtype == self.inputs[k].dtype for k, v in feed.items())


def _attach(name: str):  # pragma: no cover - child
    """The parent's block. Under spawn the child shares the parent's resource tracker, which already
    tracks the block (the parent unlinks it): nothing to register or unregister here."""
    from multiprocessing import shared_memory

    return shared_memory.SharedMemory(name=name)


def _worker_main(conn, path: str, inputs: list, outputs: list, threads: int, shm_name: str | None) -> None:
    """Child process: load the variant once, then answer messages until None: "shm" (inputs are in
    the shared slots) or a feed dict (pickled)."""  # pragma: no cover - child
    import os

    os.environ.setdefault("TF_CPP_MIN_LOG_LEVEL", "3")
    from edgec.errors import EdgecError
    from edgec.formats import TensorSpec
    from edgec.logs import captured
    from edgec.runtime.isolated import error_record
    from edgec.runtime.runners import TFLiteRunner

    try:
        shm = _attach(shm_name) if shm_name else None
        slots = Slots(shm.buf if shm else None, inputs, outputs)
        with captured():  # "INFO: Created TensorFlow Lite XNNPACK delegate for CPU."
            runner = TFLiteRunner(path, [TensorSpec(*t) for t in inputs], [TensorSpec(*t) for t in outputs],
                                  threads=threads)
            # Allocate and run once on zeros so that load-time crashes happen now, not on a request.
            runner.infer({n: np.zeros([d or 1 for d in s], dtype=t) for n, s, t in inputs})
    except EdgecError as exc:  # a documented refusal (a custom op without a kernel): the parent raises it
        conn.send(("error", exc.one_line(), error_record(exc)))
        return
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
            outs = runner.infer(slots.inputs if msg == "shm" else msg)
            dt = time.perf_counter() - t0
            if all(s is not None and s.shape == o.shape and s.dtype == o.dtype for s, o in zip(slots.outputs, outs)) \
                    and len(outs) == len(slots.outputs):
                for s, o in zip(slots.outputs, outs):
                    s[...] = o
                conn.send(("ok_shm", dt))
            else:
                conn.send(("ok", outs, dt))
        except Exception as exc:
            conn.send(("error", f"{type(exc).__name__}: {exc}"))


@dataclass
class Result:
    outputs: list[np.ndarray]
    seconds: float      # the interpreter call inside the worker


class Worker:
    def __init__(self, ctx, variant: Variant, threads: int):
        self.variant = variant
        from multiprocessing import shared_memory

        self.conn, child = ctx.Pipe()
        spec = lambda ts: [(t.name, tuple(t.shape), t.dtype) for t in ts]  # noqa: E731
        ins, outs = spec(variant.inputs), spec(variant.outputs)
        size = Slots.size(ins, outs)
        self.shm = shared_memory.SharedMemory(create=True, size=size) if size else None
        self.slots = Slots(self.shm.buf if self.shm else None, ins, outs)
        self.proc = ctx.Process(target=_worker_main, name=f"edgec-serve-{variant.name}", daemon=True,
                                args=(child, str(variant.path), ins, outs, threads, self.shm.name if self.shm else None))
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
            refusal = error_from({"error_record": msg[2]}) if len(msg) > 2 else None
            if refusal is not None:
                raise refusal
            raise InputError(f"the runtime refused the model: {msg[1]}", where=where,
                             hint="leave this variant out with --variants")
        self.quant = msg[1]

    def call(self, feed: dict[str, np.ndarray], timeout: float) -> Result:
        try:
            if self.shm is not None and self.slots.fits(feed):
                for k, v in feed.items():
                    self.slots.inputs[k][...] = v
                self.conn.send("shm")
            else:
                self.conn.send(feed)
            if not self.conn.poll(timeout):
                self.kill()
                raise self._overran(timeout)
            msg = self.conn.recv()
        except (EOFError, OSError, BrokenPipeError):
            raise self._died() from None
        return self._result(msg)

    async def acall(self, feed: dict[str, np.ndarray], timeout: float, alone: bool = False) -> Result:
        """``call`` without a thread (``alone`` changes nothing here): inputs into the shared slots, a one-word message, and the event
        loop waits for the pipe to become readable. Arrays that do not fit the slots go through
        ``call`` in a thread (their pickle can be large)."""
        if self.shm is None or not self.slots.fits(feed):
            from starlette.concurrency import run_in_threadpool

            return await run_in_threadpool(self.call, feed, timeout)
        loop = asyncio.get_running_loop()
        try:
            for k, v in feed.items():
                self.slots.inputs[k][...] = v
            self.conn.send("shm")
            readable = loop.create_future()
            fd = self.conn.fileno()
            loop.add_reader(fd, lambda: readable.done() or readable.set_result(None))
            try:
                done, _ = await asyncio.wait({readable}, timeout=timeout)
            finally:
                loop.remove_reader(fd)
            if not done:
                self.kill()
                raise self._overran(timeout)
            msg = self.conn.recv()
        except (EOFError, OSError, BrokenPipeError):
            raise self._died() from None
        return self._result(msg)

    def _overran(self, timeout: float) -> WorkerDied:
        return WorkerDied(f"variant '{self.variant.name}' ran past the {timeout:.0f} s request time limit; "
                          "its worker was stopped and is being replaced")

    def _died(self) -> WorkerDied:
        self.proc.join(5)
        return WorkerDied(f"variant '{self.variant.name}''s worker died while running this request "
                          f"({exit_reason(self.proc.exitcode)}); it is being replaced")

    def _result(self, msg) -> Result:
        if msg[0] == "ok_shm":  # copied out: the slots belong to the next request
            return Result([np.array(s) for s in self.slots.outputs], msg[1])
        if msg[0] == "ok":
            return Result(msg[1], msg[2])
        raise RuntimeError(msg[1])

    def alive(self) -> bool:
        return self.proc.is_alive()

    def kill(self) -> None:
        if self.proc.is_alive():
            self.proc.kill()
        self.proc.join(5)
        self._release()

    def _release(self) -> None:
        if self.shm is not None:
            self.slots = Slots(None, [], [])  # drop the views before closing the block
            try:
                self.shm.close()
                self.shm.unlink()
            except (FileNotFoundError, BufferError):
                pass
            self.shm = None

    def stop(self) -> None:
        try:
            self.conn.send(None)
        except (OSError, BrokenPipeError):
            pass
        self.proc.join(5)
        self.kill()
        self.conn.close()


class ThreadWorker:
    """One interpreter in the server's process, on its own thread (``--in-process``). The same
    interface as ``Worker``; ``acall`` hands the feed to the thread (no copy) and awaits its result.
    The interpreter releases the GIL while it runs, so the event loop keeps serving meanwhile."""

    def __init__(self, ctx, variant: Variant, threads: int):
        self.variant = variant
        self.quant: dict = {}
        self.runner = None
        self.last_s = float("inf")   # the last inference's seconds (the warm-up's, at first)
        self._dead = False
        self._jobs: queue.SimpleQueue = queue.SimpleQueue()
        # A daemon thread, not an executor's: one stuck in ``invoke`` must not hold up the exit.
        self._thread = threading.Thread(target=self._serve_jobs, name=f"edgec-serve-{variant.name}", daemon=True)
        self._thread.start()
        self._loading = self._submit(self._load, threads)

    def _submit(self, fn, *args) -> Future:
        fut: Future = Future()
        self._jobs.put((fut, fn, args))
        return fut

    def _serve_jobs(self) -> None:
        while True:
            job = self._jobs.get()
            if job is None:
                return
            fut, fn, args = job
            if not fut.set_running_or_notify_cancel():
                continue
            try:
                fut.set_result(fn(*args))
            except BaseException as exc:
                fut.set_exception(exc)

    def _load(self, threads: int):
        os.environ.setdefault("TF_CPP_MIN_LOG_LEVEL", "3")
        from edgec.logs import captured
        from edgec.runtime.runners import TFLiteRunner

        v = self.variant
        with captured():  # "INFO: Created TensorFlow Lite XNNPACK delegate for CPU."
            runner = TFLiteRunner(v.path, v.inputs, v.outputs, threads=threads)
            t0 = time.perf_counter()
            runner.infer({t.name: np.zeros([d or 1 for d in t.shape], dtype=t.dtype) for t in v.inputs})
            self.last_s = time.perf_counter() - t0
        return runner

    @property
    def pid(self) -> int:
        return os.getpid()

    def wait_ready(self, timeout: float) -> None:
        where = f"{self.variant.path} (variant {self.variant.name})"
        try:
            self.runner = self._loading.result(timeout)
        except FutureTimeout:
            self.kill()
            raise RuntimeCrashError(f"the model did not load within {timeout:.0f} s", where=where) from None
        except EdgecError:  # a documented refusal (a custom op without a kernel)
            self.kill()
            raise
        except Exception as exc:
            self.kill()
            raise InputError(f"the runtime refused the model: {type(exc).__name__}: {exc}", where=where,
                             hint="leave this variant out with --variants") from None
        self.quant = {k: (v[1], v[2]) for k, v in self.runner.quant.items()}

    def _infer(self, feed: dict[str, np.ndarray]) -> Result:
        t0 = time.perf_counter()
        try:
            outs = self.runner.infer(feed)
        except Exception as exc:
            raise RuntimeError(f"{type(exc).__name__}: {exc}") from None
        self.last_s = time.perf_counter() - t0
        return Result(outs, self.last_s)

    async def acall(self, feed: dict[str, np.ndarray], timeout: float, alone: bool = False) -> Result:
        """On the interpreter's thread; ``alone`` (no other request in flight), if the last inference
        took under a quarter of ``timeout``: on this one."""
        if alone and self.last_s < timeout / 4:
            return self._infer(feed)
        fut = asyncio.wrap_future(self._submit(self._infer, feed))
        try:
            return await asyncio.wait_for(fut, timeout)
        except asyncio.TimeoutError:
            self.kill()
            raise self._overran(timeout) from None

    def _overran(self, timeout: float) -> WorkerDied:
        return WorkerDied(f"variant '{self.variant.name}' ran past the {timeout:.0f} s request time limit; "
                          "its interpreter thread was abandoned (--in-process cannot stop it) and a fresh "
                          "one is loading")

    def alive(self) -> bool:
        return not self._dead

    def kill(self) -> None:
        """Never hand this interpreter out again; a thread still inside ``invoke`` runs on until it returns."""
        if not self._dead:
            self._dead = True
            self._jobs.put(None)

    def stop(self) -> None:
        self.kill()
        self._thread.join(5)
        if self.runner is not None and not self._thread.is_alive():
            self.runner.close()
            self.runner = None


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
    """``workers`` processes for one variant; ``arun`` borrows an idle one for one inference."""

    def __init__(self, ctx, variant: Variant, workers: int, threads: int, on_restart=None, make=None,
                 inflight: list[int] | None = None):
        self.ctx, self.variant, self.threads = ctx, variant, threads
        self.make = make or Worker
        self.inflight = inflight if inflight is not None else [0]   # requests in ``arun``, server-wide
        self.size = workers
        self.idle: collections.deque[Worker] = collections.deque()
        self._waiters: collections.deque = collections.deque()   # (future, loop) of requests waiting
        self.all: list[Worker] = []
        self.serving: set[int] = set()   # ids of loaded workers that have not died
        self.restarts = 0
        self.on_restart = on_restart
        self._lock = threading.Lock()
        self._closing = False

    def start(self) -> list[Worker]:
        started = [self.make(self.ctx, self.variant, self.threads) for _ in range(self.size)]
        self.all.extend(started)
        return started

    def ready(self, workers: list[Worker]) -> None:
        for w in workers:
            self.serving.add(id(w))
            self.release(w)
        self.variant.quant = workers[0].quant if workers else {}

    @property
    def alive(self) -> int:
        return sum(w.alive() for w in self.all)

    def release(self, w: Worker) -> None:
        """Give a worker back (from any thread): to the longest-waiting request, else to the idle set."""
        with self._lock:
            while self._waiters:
                fut, loop = self._waiters.popleft()
                if not fut.done():
                    loop.call_soon_threadsafe(self._hand, fut, w)
                    return
            self.idle.append(w)

    def _hand(self, fut, w: Worker) -> None:
        if fut.done():  # that request gave up meanwhile
            self.release(w)
        else:
            fut.set_result(w)

    async def acquire(self, timeout: float) -> Worker:
        loop = asyncio.get_running_loop()
        with self._lock:
            if self.idle:
                return self.idle.popleft()
            fut = loop.create_future()
            self._waiters.append((fut, loop))
        try:
            await asyncio.wait({fut}, timeout=timeout)
        except asyncio.CancelledError:
            if fut.done() and not fut.cancelled():
                self.release(fut.result())  # handed over just as this request went away
            fut.cancel()
            raise
        if not fut.done():
            fut.cancel()  # ``release`` now skips it
            raise PoolBusy(f"no worker of variant '{self.variant.name}' became free within {timeout:.0f} s")
        return fut.result()

    async def arun(self, feed: dict[str, np.ndarray], timeout: float) -> Result:
        self.inflight[0] += 1
        try:
            return await self._arun(feed, timeout)
        finally:
            self.inflight[0] -= 1

    async def _arun(self, feed: dict[str, np.ndarray], timeout: float) -> Result:
        w = await self.acquire(timeout)
        try:
            res = await w.acall(feed, timeout, alone=self.inflight[0] == 1)
        except WorkerDied:
            self._replace(w)
            raise
        except asyncio.CancelledError:  # its reply may still be coming: never hand this worker out again
            self._replace(w)
            raise
        except BaseException:
            self.release(w)
            raise
        self.release(w)
        return res

    def _replace(self, dead: Worker) -> None:
        """Start a new worker in the background; it joins the idle queue once loaded."""
        self.serving.discard(id(dead))

        def go():
            dead.kill()
            while not self._closing:
                w = self.make(self.ctx, self.variant, self.threads)
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
                self.release(w)
                return

        threading.Thread(target=go, name=f"edgec-serve-restart-{self.variant.name}", daemon=True).start()

    def close(self) -> None:
        self._closing = True
        for w in list(self.all):
            w.stop()


class Pools:
    """One ``VariantPool`` per variant, started together (their models load in parallel): worker
    processes, or with ``in_process`` interpreter threads in this process."""

    def __init__(self, variants: dict[str, Variant], workers: int, threads: int, on_restart=None,
                 in_process: bool = False):
        self.ctx = mp.get_context("spawn")
        self.in_process = in_process
        make = ThreadWorker if in_process else Worker
        inflight = [0]  # only the event loop's thread touches it
        self.pools = {name: VariantPool(self.ctx, v, workers, threads, on_restart, make, inflight)
                      for name, v in variants.items()}

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
