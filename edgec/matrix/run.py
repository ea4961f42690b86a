"""Running the matrix: every cell is a normal ``edgec build`` in its own worker process, ``--jobs`` at
a time, into ``OUT/<model>@<target>/``. A failing cell does not stop the others; its exit code and
error line go into the matrix report. Steps shared between cells are computed once (see ``plan``)."""

from __future__ import annotations

import json
import os
import subprocess
import sys
import threading
import time
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass, field
from pathlib import Path

from edgec.errors import OutputError
from edgec.matrix.plan import schedule
from edgec.matrix.project import Cell, Project, build_config

CELL_TIMEOUT_S = 3 * 3600


@dataclass
class MatrixOptions:
    out: Path
    jobs: int = 0                   # 0: the core count
    cache_dir: str | None = None
    shard: tuple[int, int] | None = None
    only: list[str] = field(default_factory=list)
    baseline: str | None = None
    fail_on: str = "p50:+10%"
    quiet: bool = False


class Grid:
    """The progress display: the models x targets grid with each cell's state, redrawn on a TTY,
    one line per change otherwise."""

    MARK = {"queued": "·", "running": "…", "ok": "ok", "failed": "FAIL", "skipped": "-"}

    def __init__(self, project: Project, cells: list[Cell], enabled: bool, stream=None):
        self.project, self.enabled = project, enabled
        self.stream = stream or sys.stderr
        self.state = {c.name: "queued" for c in cells}
        self.live = enabled and self.stream.isatty()
        self.lock = threading.Lock()
        self.drawn = 0

    def render(self) -> str:
        w = max([len(m) for m in self.project.models] + [5])
        cols = [max(len(t), 5) for t in self.project.targets]
        lines = [" " * w + "  " + "  ".join(t.ljust(c) for t, c in zip(self.project.targets, cols))]
        for m in self.project.models:
            cells = [self.MARK.get(self.state.get(f"{m}@{t}", "skipped"), "?").ljust(c)
                     for t, c in zip(self.project.targets, cols)]
            lines.append(m.ljust(w) + "  " + "  ".join(cells))
        return "\n".join(lines)

    def set(self, name: str, state: str, note: str = "") -> None:
        with self.lock:
            self.state[name] = state
            if not self.enabled:
                return
            if self.live:
                if self.drawn:
                    self.stream.write(f"\x1b[{self.drawn}F\x1b[J")
                text = self.render()
                self.drawn = text.count("\n") + 1
                self.stream.write(text + "\n")
            else:
                done = sum(s in ("ok", "failed") for s in self.state.values())
                self.stream.write(f"  [{done}/{len(self.state)}] {name}: {state}{' ' + note if note else ''}\n")
            self.stream.flush()


def run_matrix(project: Project, cells: list[Cell], opts: MatrixOptions) -> dict:
    out = Path(opts.out)
    try:
        (out / ".matrix").mkdir(parents=True, exist_ok=True)
    except OSError as exc:
        raise OutputError(f"cannot create the matrix output ({exc.strerror})", where=str(out)) from exc
    cache_dir = opts.cache_dir or project.cache_dir
    configs = {c.name: build_config(c, out / c.name, cache_dir) for c in cells}  # every cell checked first
    order, groups = schedule(cells)
    grid = Grid(project, cells, enabled=not opts.quiet)
    jobs = opts.jobs or os.cpu_count() or 1
    t0 = time.perf_counter()
    with ThreadPoolExecutor(max_workers=jobs) as pool:
        results = list(pool.map(lambda c: _run_cell(c, configs[c.name], out, grid), order))
    if grid.enabled and not grid.live:
        grid.stream.write(grid.render() + "\n")
    by_name = {r["cell"]: r for r in results}
    return {"cells": [by_name[c.name] for c in cells], "groups": groups, "jobs": jobs,
            "seconds": round(time.perf_counter() - t0, 3)}


def _run_cell(cell: Cell, cfg, out: Path, grid: Grid) -> dict:
    from edgec.matrix.summary import summarize_cell

    work = out / ".matrix"
    cfg_path = work / f"{cell.name}.json"
    cfg_path.write_text(json.dumps(cfg.to_dict(), indent=1))
    grid.set(cell.name, "running")
    t = time.perf_counter()
    cmd = [sys.executable, "-m", "edgec.cli.main", "build", "--config", str(cfg_path), "-q"]
    try:
        proc = subprocess.run(cmd, capture_output=True, text=True, timeout=CELL_TIMEOUT_S)
        code, log = proc.returncode, proc.stdout + proc.stderr
    except subprocess.TimeoutExpired as exc:
        code, log = 124, f"edgec: timeout: the build ran past {CELL_TIMEOUT_S} s\n{exc.stderr or ''}"
    (work / f"{cell.name}.log").write_text(log)
    err = next((ln for ln in reversed(log.splitlines()) if ln.startswith("edgec: ")), None)
    if code != 0 and err is None:
        err = f"the build exited {code}: {log.strip().splitlines()[-1] if log.strip() else 'no output'}"
    res = summarize_cell(cell, out, code, err, round(time.perf_counter() - t, 3))
    grid.set(cell.name, "ok" if res["ok"] else "failed", f"({res['seconds']:.1f}s)" if res["ok"] else f"({err})")
    return res
