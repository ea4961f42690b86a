"""Where a benchmark runs. ``LocalDevice`` runs it in this process on this machine; a device behind
ssh (a Raspberry Pi) or adb (a phone) would implement the same two methods: ``describe`` (the
machine's conditions) and ``run`` (open a session, time it, return samples and memory).
"""

from __future__ import annotations

import os
import platform
from dataclasses import dataclass
from pathlib import Path

from edgec.bench.device_runner import _reset_peak, _status_kb  # stdlib-only readers, shared with the board's runner
from edgec.bench.timing import LoopSettings, Timing, measure


@dataclass
class Run:
    timing: Timing
    memory: dict
    session: object      # runtimes.Session
    input_source: str
    after: dict | None = None   # a remote device's facts after the run (thermal), shown as its machine


class Device:
    name = "device"

    def describe(self) -> dict:
        raise NotImplementedError

    def run(self, path: Path, runtime: str, threads: int, delegate: str, loop: LoopSettings,
            inputs: str | None = None, seed: int = 0) -> Run:
        raise NotImplementedError


def _cpu_model() -> str:
    try:
        for line in Path("/proc/cpuinfo").read_text().splitlines():
            if line.startswith("model name"):
                return line.split(":", 1)[1].strip()
    except OSError:
        pass
    return platform.processor() or platform.machine()


class LocalDevice(Device):
    name = "local"

    def describe(self) -> dict:
        from edgec.bench.device_runner import governors, thermal  # the same readers the board's runner uses

        load = os.getloadavg() if hasattr(os, "getloadavg") else None
        gov = sorted(set(governors().values()))
        return {"device": "this machine", "hostname": platform.node(), "machine": platform.machine(),
                "cpu": _cpu_model(), "cores": os.cpu_count(), "platform": platform.platform(),
                "python": platform.python_version(), "governor": gov[0] if len(gov) == 1 else (gov or None),
                "thermal_c": thermal(), "load_avg_1_5_15": [round(x, 2) for x in load] if load else None}

    def _invoker(self, session):
        """What the timing loop calls: the runtime's own invoke (a subclass may wrap it)."""
        return session.invoke

    def run(self, path, runtime, threads, delegate, loop, inputs=None, seed=0) -> Run:
        from edgec.bench import runtimes

        rss_before = _status_kb("VmRSS")
        reset = _reset_peak()
        opener = runtimes.tflite_session if runtime == "tflite" else runtimes.onnx_session
        session, source = opener(Path(path), threads, delegate, inputs, seed)
        timing = measure(self._invoker(session), loop)
        peak = _status_kb("VmHWM")
        memory = {"rss_before_mb": _mb(rss_before), "peak_rss_mb": _mb(peak),
                  "increase_mb": _mb(peak - rss_before) if peak and rss_before else None,
                  "method": "VmHWM after clearing the peak (whole process: the interpreter, the model, the arena)"
                  if reset else "VmHWM of the whole process since it started (peak could not be reset)"}
        return Run(timing, memory, session, source)


def _mb(kb: int | None) -> float | None:
    return round(kb / 1024, 1) if kb is not None else None


DEVICE_KEYS = ("url", "python", "key", "benchmark_binary", "timeout", "parity")


def check_spec(spec: dict, where: str = "--device") -> dict:
    """A device spec (``{"url": "ssh://pi@host", "python": ..., "key": ..., ...}``) with its fields checked."""
    from edgec.errors import UsageError

    unknown = sorted(set(spec) - set(DEVICE_KEYS))
    if unknown:
        raise UsageError(f"unknown device field(s) {', '.join(unknown)}", where=where,
                         hint=f"allowed: {', '.join(DEVICE_KEYS)}")
    url = str(spec.get("url") or "")
    if not url.startswith(("ssh://", "adb://")):
        raise UsageError(f"device '{url}' is not ssh://[USER@]HOST[:PORT] or adb://SERIAL", where=where,
                         hint="e.g. --device ssh://pi@raspberrypi.local or --device adb://emulator-5554")
    if spec.get("parity") and url.startswith("adb://"):
        raise UsageError("--parity-on-device needs an ssh:// board: adb's benchmark_model returns no outputs",
                         where=where, hint="drop --parity-on-device for a phone, or use a board over ssh")
    return spec
