"""A progress display for long steps: one line per step on stderr, with a live timer on a TTY."""

from __future__ import annotations

import contextlib
import sys
import threading
import time


class Progress:
    def __init__(self, enabled: bool = True, stream=None):
        self.enabled = enabled
        self.stream = stream or sys.stderr
        self.live = enabled and hasattr(self.stream, "isatty") and self.stream.isatty()

    def _write(self, text: str) -> None:
        if self.enabled:
            self.stream.write(text)
            self.stream.flush()

    @contextlib.contextmanager
    def step(self, title: str):
        t0 = time.perf_counter()
        stop = threading.Event()
        ticker = None
        if self.live:
            def tick():
                while not stop.wait(0.5):
                    self._write(f"\r  .. {title}  {time.perf_counter() - t0:5.1f}s")

            ticker = threading.Thread(target=tick, daemon=True)
            ticker.start()
        else:
            self._write(f"  .. {title}\n")
        try:
            yield
        except BaseException:
            stop.set()
            self._write(f"\r  !! {title}  failed after {time.perf_counter() - t0:.1f}s\n")
            raise
        finally:
            stop.set()
            if ticker:
                ticker.join()
        self._write(f"\r  ok {title}  {time.perf_counter() - t0:.1f}s\n")

    def done(self, title: str, cached: bool = False) -> None:
        self._write(f"  ok {title}  {'(cached)' if cached else ''}\n")
