"""A device pool: ``devices.yaml`` names boards with their target profile; jobs fan out over the
boards that match a target, one job per board at a time. A board is held with an exclusive file
lock (``fcntl.flock`` on ``~/.cache/edgec/locks/<board>.lock``), so two edgec processes (a bench and
a matrix, two CI jobs) never time on the same board at once.

```yaml
devices:
  - name: pi-desk
    url: ssh://pi@192.168.1.20
    target: rpi4
    python: /home/pi/venv/bin/python   # optional, default python3
    key: ~/.ssh/id_ed25519            # optional
  - name: pixel
    url: adb://R5CT1234
    target: android-arm64-cpu
    benchmark_binary: ./benchmark_model
```

``run_jobs(pool, target, jobs, fn)`` is what ``edgec matrix`` can call: every job runs once, on the
next free matching board. ``edgec bench --device-pool`` runs its one artifact on every matching board.
"""

from __future__ import annotations

import fcntl
import hashlib
import os
import queue
import threading
import time
from dataclasses import dataclass
from pathlib import Path
from typing import Callable

from edgec.errors import DeviceError, DeviceTimeoutError, InputError, UsageError
from edgec.bench.devices import DEVICE_KEYS, check_spec

LOCK_WAIT_S = 3600


@dataclass(frozen=True)
class Board:
    name: str
    target: str
    spec: dict     # the device spec make_device takes (url, python, key, benchmark_binary, timeout)


def load_pool(path: str | Path) -> list[Board]:
    import yaml

    p = Path(path)
    if not p.is_file():
        raise InputError(f"device pool '{p}' does not exist", where=str(p), hint="write a devices.yaml (see the "
                         "README's 'Real devices')")
    try:
        data = yaml.safe_load(p.read_text()) or {}
    except yaml.YAMLError as exc:
        raise InputError(f"device pool is not valid YAML: {str(exc).splitlines()[0]}", where=str(p)) from None
    rows = data.get("devices") if isinstance(data, dict) else None
    if not isinstance(rows, list) or not rows:
        raise InputError("a device pool needs a 'devices:' list", where=str(p),
                         hint="devices: [{name: pi-desk, url: ssh://pi@host, target: rpi4}]")
    boards, seen = [], set()
    for i, row in enumerate(rows):
        where = f"{p}: devices[{i}]"
        if not isinstance(row, dict) or not row.get("name") or not row.get("url") or not row.get("target"):
            raise InputError("each device needs name, url and target", where=where)
        if row["name"] in seen:
            raise InputError(f"device name '{row['name']}' appears twice", where=where)
        seen.add(row["name"])
        spec = {k: row[k] for k in DEVICE_KEYS if row.get(k) is not None and k != "parity"}
        extra = sorted(set(row) - set(DEVICE_KEYS) - {"name", "target"})
        if extra:
            raise InputError(f"unknown field(s) {', '.join(extra)}", where=where,
                             hint=f"allowed: name, target, {', '.join(k for k in DEVICE_KEYS if k != 'parity')}")
        if spec.get("key"):
            spec["key"] = str(Path(os.path.expanduser(spec["key"])) if os.path.isabs(os.path.expanduser(spec["key"]))
                              else (p.parent / os.path.expanduser(spec["key"])).resolve())
        check_spec(spec, where)
        boards.append(Board(str(row["name"]), str(row["target"]), spec))
    return boards


def matching(boards: list[Board], target: str) -> list[Board]:
    return [b for b in boards if b.target == target]


def lock_dir() -> Path:
    base = os.environ.get("EDGEC_LOCK_DIR") or os.path.join(os.path.expanduser("~"), ".cache", "edgec", "locks")
    Path(base).mkdir(parents=True, exist_ok=True)
    return Path(base)


class BoardLock:
    """An exclusive lock on one board (by its URL), waited for up to ``wait_s``."""

    def __init__(self, board: Board, wait_s: float = LOCK_WAIT_S):
        key = hashlib.sha256(board.spec["url"].encode()).hexdigest()[:16]
        self.path = lock_dir() / f"{key}.lock"
        self.board, self.wait_s, self.fd = board, wait_s, None

    def __enter__(self) -> "BoardLock":
        self.fd = os.open(self.path, os.O_RDWR | os.O_CREAT, 0o644)
        deadline = time.monotonic() + self.wait_s
        while True:
            try:
                fcntl.flock(self.fd, fcntl.LOCK_EX | fcntl.LOCK_NB)
                os.ftruncate(self.fd, 0)
                os.write(self.fd, f"{os.getpid()} {self.board.spec['url']}\n".encode())
                return self
            except BlockingIOError:
                if time.monotonic() >= deadline:
                    os.close(self.fd)
                    raise DeviceTimeoutError(f"board '{self.board.name}' stayed busy for {self.wait_s:.0f} s "
                                             f"(locked by another edgec: {self.path})", where=self.board.spec["url"])
                time.sleep(0.2)

    def __exit__(self, *exc) -> None:
        if self.fd is not None:
            fcntl.flock(self.fd, fcntl.LOCK_UN)
            os.close(self.fd)
            self.fd = None


def run_jobs(boards: list[Board], jobs: list, fn: Callable[[Board, object], dict], wait_s: float = LOCK_WAIT_S) -> list[dict]:
    """Run every job once on the next free board (one job per board at a time, each under the
    board's lock); results in job order: ``{"job", "board", "result"}`` or ``{"job", "board", "error"}``
    (a DeviceError of one board is recorded, the other boards go on)."""
    if not boards:
        raise UsageError("no board in the pool for this job")
    todo: queue.Queue = queue.Queue()
    for i, job in enumerate(jobs):
        todo.put((i, job))
    results: list = [None] * len(jobs)

    def worker(board: Board) -> None:
        while True:
            try:
                i, job = todo.get_nowait()
            except queue.Empty:
                return
            try:
                with BoardLock(board, wait_s):
                    results[i] = {"job": i, "board": board.name, "result": fn(board, job)}
            except DeviceError as exc:
                results[i] = {"job": i, "board": board.name, "error": exc.one_line(), "exit_code": exc.exit_code}

    threads = [threading.Thread(target=worker, args=(b,), daemon=True) for b in boards]
    for t in threads:
        t.start()
    for t in threads:
        t.join()
    return results


def on_every_board(boards: list[Board], fn: Callable[[Board], dict], wait_s: float = LOCK_WAIT_S) -> list[dict]:
    """``fn`` once on each board, the boards side by side, each under its lock."""
    results: list = [None] * len(boards)

    def one(i: int, board: Board) -> None:
        try:
            with BoardLock(board, wait_s):
                results[i] = {"board": board.name, "result": fn(board)}
        except DeviceError as exc:
            results[i] = {"board": board.name, "error": exc.one_line(), "exit_code": exc.exit_code}

    threads = [threading.Thread(target=one, args=(i, b), daemon=True) for i, b in enumerate(boards)]
    for t in threads:
        t.start()
    for t in threads:
        t.join()
    return results


def bench_pool(cfg, loop) -> dict:
    """``edgec bench --device-pool FILE --target T``: the artifact on every board of T."""
    from edgec.bench.measure import bench_artifact
    from edgec.bench.connect import make_device

    boards = matching(load_pool(cfg.device_pool), cfg.target)
    if not boards:
        raise UsageError(f"no device in {cfg.device_pool} has target '{cfg.target}'", where=cfg.device_pool)

    def one(board: Board) -> dict:
        rec = bench_artifact(cfg.artifact, cfg.target, threads=cfg.threads, loop=loop, inputs=cfg.inputs,
                             seed=cfg.seed, variant=cfg.variant, compat=cfg.compat, device=make_device(board.spec))
        rec["board"] = board.name
        return rec

    results = on_every_board(boards, one)
    return {"pool": str(cfg.device_pool), "target": cfg.target, "artifact": str(cfg.artifact), "boards": results,
            "ok": all("result" in r for r in results)}


def render_pool(rec: dict) -> str:
    from edgec.bench.report import render

    lines = [f"edgec bench {rec['artifact']} on the {len(rec['boards'])} board(s) of {rec['target']} in {rec['pool']}"]
    for r in rec["boards"]:
        lines.append("")
        lines.append(f"== {r['board']} ==")
        lines.append(render(r["result"]) if "result" in r else f"  FAILED: {r['error']}")
    return "\n".join(lines)
