"""Headless Chromium (Debian's package, installed by scripts/setup.sh --test) for report tests."""

from __future__ import annotations

import shutil
import subprocess
import tempfile
from pathlib import Path

FLAGS = ["--headless", "--no-sandbox", "--disable-gpu", "--disable-quic", "--no-first-run",
         "--disable-background-networking", "--disable-component-update", "--disable-sync",
         "--enable-logging=stderr", "--v=0", "--hide-scrollbars"]


def chromium() -> str | None:
    return shutil.which("chromium") or shutil.which("chromium-browser")


def render(page: Path, screenshot: Path, size=(1200, 3000)) -> tuple[str, list[str]]:
    """Screenshot ``page`` and return (the DOM after load, console messages)."""
    exe = chromium()
    assert exe, "chromium is not installed (scripts/setup.sh --test installs Debian's chromium)"
    console = []
    with tempfile.TemporaryDirectory() as profile:
        common = [exe, *FLAGS, f"--user-data-dir={profile}", f"--window-size={size[0]},{size[1]}"]
        shot = subprocess.run(common + [f"--screenshot={screenshot}", page.resolve().as_uri()],
                              capture_output=True, text=True, timeout=120)
        dom = subprocess.run(common + ["--dump-dom", page.resolve().as_uri()], capture_output=True, text=True,
                             timeout=120)
    for err in (shot.stderr, dom.stderr):
        console += [ln for ln in err.splitlines() if ":CONSOLE" in ln]
    assert shot.returncode == 0 and dom.returncode == 0, shot.stderr[-2000:] + dom.stderr[-2000:]
    return dom.stdout, console
