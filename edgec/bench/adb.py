"""A phone over ADB (``--device adb://SERIAL``): the model is pushed to a per-run dir under
``/data/local/tmp`` and timed by TFLite's own ``benchmark_model`` (found on the device, or pushed
from ``--benchmark-binary FILE``); its output is parsed (``benchmark_model.py``) into the bench
record. Every ``adb`` call has an argument list and a time limit.

Tested here only with a fake ``adb`` on PATH and on recorded real ``benchmark_model`` output (no
phone is reachable from where edgec is developed); see the README's "Real devices".
"""

from __future__ import annotations

import shlex
import subprocess
from pathlib import Path

from edgec.errors import (DependencyError, DeviceAuthError, DeviceRuntimeError, DeviceTimeoutError,
                      DeviceUnreachableError, UsageError)
from edgec.bench.devices import Device
from edgec.bench.timing import LoopSettings

CALL_TIMEOUT_S = 60
ON_DEVICE_DIR = "/data/local/tmp"
_FACTS = ("for p in ro.product.manufacturer ro.product.model ro.build.version.release ro.build.version.sdk "
          "ro.product.cpu.abi ro.soc.model; do echo \"prop $p=$(getprop $p)\"; done; echo \"cores=$(nproc)\"; "
          "echo \"governor=$(cat /sys/devices/system/cpu/cpu0/cpufreq/scaling_governor 2>/dev/null)\"; "
          "for z in /sys/class/thermal/thermal_zone*; do echo \"thermal $(cat $z/type 2>/dev/null)=$(cat $z/temp "
          "2>/dev/null)\"; done; grep -m1 -E '^(Hardware|model name)' /proc/cpuinfo")


def serial_of(url: str) -> str:
    serial = url.removeprefix("adb://").strip("/")
    if not url.startswith("adb://") or not serial:
        raise UsageError(f"--device '{url}' is not adb://SERIAL", hint="see the serials with: adb devices")
    return serial


class AdbDevice(Device):
    remote = True

    def __init__(self, url: str, benchmark_binary: str | None = None, timeout: float | None = None,
                 profile_ops: bool = False):
        self.serial = serial_of(url)
        self.name = f"adb://{self.serial}"
        if benchmark_binary and not Path(benchmark_binary).is_file():
            raise UsageError(f"--benchmark-binary '{benchmark_binary}' is not a file", where=benchmark_binary,
                             hint="pass the benchmark_model binary built for the phone's ABI (android_arm64)")
        self.binary = benchmark_binary
        self.timeout = timeout
        self.profile_ops = profile_ops
        self._facts: dict | None = None

    def _adb(self, args: list[str], what: str, timeout: float = CALL_TIMEOUT_S) -> subprocess.CompletedProcess:
        cmd = ["adb", "-s", self.serial, *args]
        try:
            p = subprocess.run(cmd, capture_output=True, text=True, timeout=timeout, stdin=subprocess.DEVNULL)
        except FileNotFoundError:
            raise DependencyError("'adb' is not installed here", hint="install Android platform-tools "
                                  "(apt-get install adb) and put adb on PATH") from None
        except subprocess.TimeoutExpired:
            raise DeviceTimeoutError(f"{what} ran past its {timeout:.0f} s limit and was stopped", where=self.name,
                                     hint="a longer run takes --device-timeout S") from None
        if p.returncode != 0:
            text = (p.stderr + p.stdout).strip()
            low = text.lower()
            line = next((ln.strip() for ln in text.splitlines() if ln.strip()), f"exit status {p.returncode}")
            if "unauthorized" in low:
                raise DeviceAuthError(f"{what}: the phone has not authorized this computer ({line})", where=self.name,
                                      hint="unlock the phone and accept the USB debugging prompt")
            if "not found" in low and "device" in low or "offline" in low or "no devices" in low:
                raise DeviceUnreachableError(f"{what}: adb cannot reach the phone ({line})", where=self.name,
                                             hint="check the cable and `adb devices`; the serial must be listed")
            if args[:1] == ["shell"]:
                return p  # the command on the phone failed: the caller reads its output
            raise DeviceUnreachableError(f"{what}: adb failed ({line})", where=self.name)
        return p

    def _shell(self, script: str, what: str, timeout: float = CALL_TIMEOUT_S) -> subprocess.CompletedProcess:
        return self._adb(["shell", script], what, timeout)

    def describe(self) -> dict:
        if self._facts is None:
            p = self._shell(_FACTS, "reading the phone's facts")
            props, thermal, out = {}, {}, {}
            for line in p.stdout.splitlines():
                key, _, value = line.strip().partition("=")
                if key.startswith("prop "):
                    props[key[5:]] = value
                elif key.startswith("thermal "):
                    try:
                        thermal[key[8:]] = round(int(value) / 1000.0, 1)
                    except ValueError:
                        pass
                elif key in ("cores", "governor"):
                    out[key] = value or None
                elif ":" in line:
                    out["cpu"] = line.split(":", 1)[1].strip()
            model = " ".join(x for x in (props.get("ro.product.manufacturer"), props.get("ro.product.model")) if x)
            self._facts = {"device": self.name, "transport": "adb", "model": model or None,
                           "android": props.get("ro.build.version.release"), "sdk": props.get("ro.build.version.sdk"),
                           "abi": props.get("ro.product.cpu.abi"),
                           "cpu": out.get("cpu") or props.get("ro.soc.model") or props.get("ro.product.cpu.abi"),
                           "cores": int(out["cores"]) if (out.get("cores") or "").isdigit() else None,
                           "governor": out.get("governor"), "thermal_c": thermal,
                           "runtime": "benchmark_model", "runtime_version": "unknown (benchmark_model prints none)"}
        return self._facts

    def runtime(self) -> tuple[str, str]:
        return "benchmark_model", ""

    def benchmark_command(self, binary: str, model: str, threads: int, delegate: str, loop: LoopSettings) -> list[str]:
        """benchmark_model's flags for edgec's loop settings and the profile's delegate."""
        cmd = [binary, f"--graph={model}", f"--num_threads={threads}", "--warmup_runs=1",
               f"--warmup_min_secs={loop.warmup_s:g}", f"--num_runs={loop.min_runs}", f"--min_secs={loop.min_seconds:g}",
               f"--max_secs={loop.max_seconds:g}"]
        if delegate == "gpu":
            cmd.append("--use_gpu=true")
        elif delegate == "nnapi":
            cmd.append("--use_nnapi=true")
        elif delegate == "none":
            cmd.append("--use_xnnpack=false")
        else:
            cmd.append("--use_xnnpack=true")
        if self.profile_ops:
            cmd.append("--enable_op_profiling=true")
        return cmd

    def _find_binary(self, rdir: str) -> str:
        if self.binary:
            self._adb(["push", self.binary, f"{rdir}/benchmark_model"], "pushing --benchmark-binary", CALL_TIMEOUT_S * 3)
            self._shell(f"chmod 755 {shlex.quote(rdir)}/benchmark_model", "making benchmark_model executable")
            return f"{rdir}/benchmark_model"
        p = self._shell(f"command -v benchmark_model || ls {ON_DEVICE_DIR}/benchmark_model", "looking for benchmark_model")
        found = next((ln.strip() for ln in p.stdout.splitlines() if ln.strip().endswith("benchmark_model")), None)
        if p.returncode != 0 or not found:
            raise DeviceRuntimeError("benchmark_model is not on the phone (not on PATH, not in /data/local/tmp)",
                                     where=self.name, hint="pass --benchmark-binary FILE (TFLite's benchmark_model "
                                     "for android_arm64, from the TensorFlow/LiteRT releases)")
        return found

    def measure(self, path: Path, threads: int, delegate: str, loop: LoopSettings) -> dict:
        """The measured part of a bench record, from benchmark_model on the phone."""
        from edgec.bench.benchmark_model import parse

        facts = dict(self.describe())
        p = self._shell(f"mktemp -d {ON_DEVICE_DIR}/edgec.XXXXXXXX", "creating a temp dir on the phone")
        rdir = p.stdout.strip().splitlines()[-1] if p.stdout.strip() else ""
        if p.returncode != 0 or not rdir.startswith(f"{ON_DEVICE_DIR}/edgec."):
            raise DeviceRuntimeError(f"mktemp on the phone failed ({(p.stderr or p.stdout).strip()[:200]})",
                                     where=self.name)
        try:
            self._adb(["push", str(path), f"{rdir}/model.tflite"], "pushing the model", CALL_TIMEOUT_S * 3)
            binary = self._find_binary(rdir)
            cmd = self.benchmark_command(binary, f"{rdir}/model.tflite", threads, delegate, loop)
            limit = self.timeout or (loop.warmup_s + loop.max_seconds + 120)
            out = self._shell(" ".join(shlex.quote(c) for c in cmd) + " 2>&1", "benchmark_model", limit)
            numbers = parse(out.stdout + out.stderr, where=self.name)
            after = self.describe_thermal()
        finally:
            try:
                self._shell(f"rm -rf {shlex.quote(rdir)}", "removing the temp dir on the phone")
            except Exception:  # noqa: BLE001 - the clean-up never hides the run's own error
                pass
        facts.update(thermal_before_c=facts.pop("thermal_c", {}), thermal_after_c=after)
        return {"numbers": numbers, "facts": facts, "command": cmd}

    def describe_thermal(self) -> dict:
        p = self._shell("for z in /sys/class/thermal/thermal_zone*; do echo \"$(cat $z/type 2>/dev/null)="
                        "$(cat $z/temp 2>/dev/null)\"; done", "reading the phone's temperatures")
        out = {}
        for line in p.stdout.splitlines():
            k, _, v = line.strip().partition("=")
            if v.strip().lstrip("-").isdigit():
                out[k] = round(int(v) / 1000.0, 1)
        return out

    def run(self, *a, **k):
        raise UsageError("a phone over adb is timed by benchmark_model (AdbDevice.measure), not edgec's loop")


def fill_record(record: dict, result: dict, threads: int, why: str, loop: LoopSettings, device: AdbDevice) -> None:
    """The measured part of a bench record from benchmark_model's numbers (the keys a local run has;
    what the binary does not report stays null, and there are no raw samples)."""
    import time

    n = dict(result["numbers"])
    memory = n.pop("memory", {})
    ops = n.pop("op_profile", None)
    record.update(available=True, **{k: n.get(k) for k in ("p50_ms", "p90_ms", "p99_ms", "mean_ms", "std_ms", "cv",
                                                              "min_ms", "max_ms", "runs")},
                  p50_se_ms=None, duration_s=None, warmup={"seconds": None, "runs": n.get("warmup_runs")},
                  memory={"peak_rss_mb": memory.get("overall_mb"), "init_mb": memory.get("init_mb"),
                          "method": memory.get("method")},
                  samples_ms=[], samples_kept="none: benchmark_model reports summary statistics, not raw samples",
                  measured_on=device.name, benchmark_model={**{k: n.get(k) for k in ("init_ms", "first_inference_ms",
                                                                                    "warmup_avg_ms", "p5_ms", "p95_ms")},
                                                            "command": result["command"]})
    if ops is not None:
        record["op_profile"] = ops
    notes = ["timed by benchmark_model on the phone: p50 is its median where it prints one; p90/p99 are not "
             "reported by it and stay null"]
    record["conditions"] = {"machine": result["facts"], "runtime": "benchmark_model", "runtime_version": None,
                            "threads": threads, "threads_from": why, "delegate": next(
                                (c.split("=")[0][6:] for c in result["command"] if c.endswith("=true") and
                                 c.startswith("--use_")), "xnnpack"), "input_source": "benchmark_model's own "
                            "random inputs", "inputs": [], "notes": notes, "loop": loop.to_dict(),
                            "measured_at": time.strftime("%Y-%m-%dT%H:%M:%SZ", time.gmtime())}
