"""The runner edgec copies to a board (with ``timing.py`` and ``tflite.py`` beside it) and runs there
with the board's python: ``python3 device_runner.py TASK.json``. Self-contained on purpose: the
standard library, numpy, and whichever TFLite runtime imports (``ai_edge_litert``, else
``tflite_runtime``). The model is loaded and run by edgec's own TFLite runner
(``edgec/runtime/tflite.py``, shipped as ``tflite.py``): the same load, delegate, thread and
quantized-I/O handling as on the host.

The timing loop is edgec's own ``measure`` (``edgec/bench/timing.py``, shipped as a file next to
this one), so a board runs exactly the loop a local run does; the raw samples come back and the
host computes the statistics with ``edgec.bench.stats``, as for a local run.

Tasks (``task["task"]``): ``facts`` (the board's conditions), ``bench`` (time the model),
``outputs`` (run the model on given raw input tensors, for parity). The result is one line on
stdout, ``EDGEC-RESULT {json}``; exit status 0 (done), 3 (a dependency is missing), 4 (the runtime
cannot load the model). Anything else is a crash. A task carries its own time limit (SIGALRM).
"""

from __future__ import annotations

import glob
import json
import os
import platform
import signal
import sys
import time

MARK = "EDGEC-RESULT "
EXIT_MISSING = 3
EXIT_LOAD = 4


def _emit(result: dict, code: int = 0) -> int:
    sys.stdout.write(MARK + json.dumps(result) + "\n")
    sys.stdout.flush()
    return code


def _read(path: str) -> str | None:
    try:
        with open(path) as f:
            return f.read()
    except OSError:
        return None


ARM_PARTS = {"0xd03": "Cortex-A53", "0xd04": "Cortex-A35", "0xd05": "Cortex-A55", "0xd07": "Cortex-A57",
             "0xd08": "Cortex-A72", "0xd09": "Cortex-A73", "0xd0a": "Cortex-A75", "0xd0b": "Cortex-A76",
             "0xd0d": "Cortex-A77", "0xd41": "Cortex-A78", "0xd44": "Cortex-X1"}  # Arm Ltd (implementer 0x41)


def cpu_model(text: str | None) -> str:
    """The CPU's name from /proc/cpuinfo: x86's 'model name'; on a Pi its 'Model' line and the core
    named from 'CPU part' (aarch64 kernels print no 'model name'), e.g. 'Raspberry Pi 4 Model B Rev
    1.1 (Cortex-A72)'; else 'Hardware'."""
    fields: dict = {}
    for line in (text or "").splitlines():
        key, sep, value = line.partition(":")
        if sep:
            fields.setdefault(key.strip(), value.strip())
    core = ARM_PARTS.get(fields.get("CPU part", "").lower()) if fields.get("CPU implementer") == "0x41" else None
    core = core or (f"CPU part {fields['CPU part']}" if fields.get("CPU part") else None)
    board = fields.get("Model") or fields.get("Hardware")
    if board:
        return f"{board} ({core or fields.get('model name') or fields.get('Hardware')})"
    return fields.get("model name") or core or platform.processor() or platform.machine()


def thermal() -> dict:
    """{zone type: degrees C} from /sys/class/thermal (empty where the board exposes none)."""
    out = {}
    for zone in sorted(glob.glob("/sys/class/thermal/thermal_zone*")):
        raw = _read(os.path.join(zone, "temp"))
        kind = (_read(os.path.join(zone, "type")) or os.path.basename(zone)).strip()
        try:
            out[f"{kind} ({os.path.basename(zone)})"] = round(int(raw.strip()) / 1000.0, 1)
        except (AttributeError, ValueError):
            continue
    return out


def governors() -> dict:
    out = {}
    for path in sorted(glob.glob("/sys/devices/system/cpu/cpu[0-9]*/cpufreq/scaling_governor")):
        cpu = path.split("/")[5]
        out[cpu] = (_read(path) or "").strip()
    return out


def _os_release() -> str | None:
    for line in (_read("/etc/os-release") or "").splitlines():
        if line.startswith("PRETTY_NAME="):
            return line.split("=", 1)[1].strip().strip('"')
    return None


def _tflite():
    """edgec's TFLite runner: ``tflite.py`` beside this file (on a board), else ``edgec.runtime.tflite``."""
    name = "edgec_runtime_tflite"
    if name in sys.modules:
        return sys.modules[name]
    path = os.path.join(os.path.dirname(os.path.abspath(__file__)), "tflite.py")
    if not os.path.isfile(path):
        from edgec.runtime import tflite

        return tflite
    import importlib.util

    spec = importlib.util.spec_from_file_location(name, path)
    mod = importlib.util.module_from_spec(spec)
    sys.modules[name] = mod  # dataclasses look their module up while the class is made
    try:
        spec.loader.exec_module(mod)
    except BaseException:
        del sys.modules[name]
        raise
    return mod


def runtime():
    """(interpreter module, package name, version, errors) of the first TFLite runtime that imports."""
    try:
        tflite = _tflite()
    except ImportError as exc:  # the runner needs numpy, as every TFLite package does
        return None, None, None, [f"numpy: {exc}"]
    return tflite.find_package("auto")


def facts() -> dict:
    gov = governors()
    load = os.getloadavg() if hasattr(os, "getloadavg") else None
    try:
        import numpy

        np_version = numpy.__version__
    except ImportError:
        np_version = None
    _, package, version, errors = runtime()
    return {"hostname": platform.node(), "machine": platform.machine(), "cpu": cpu_model(_read("/proc/cpuinfo")),
            "cores": os.cpu_count(), "governor": sorted(set(gov.values()))[0] if len(set(gov.values())) == 1 else
            (gov or None), "thermal_c": thermal(), "os": _os_release(), "platform": platform.platform(),
            "python": platform.python_version(), "python_executable": sys.executable, "numpy": np_version,
            "runtime": package, "runtime_version": version, **({"runtime_errors": errors} if not package else {}),
            "load_avg_1_5_15": [round(x, 2) for x in load] if load else None}


def _status_kb(key: str):
    for line in (_read("/proc/self/status") or "").splitlines():
        if line.startswith(key + ":"):
            return int(line.split()[1])
    return None


def _reset_peak() -> bool:
    try:
        with open("/proc/self/clear_refs", "w") as f:
            f.write("5")
        return True
    except OSError:
        return False


def _needs(task: dict):
    """The numpy module and the runtime, or the reason they are missing."""
    try:
        import numpy as np
    except ImportError as exc:
        return None, None, f"numpy cannot be imported by {sys.executable}: {exc}"
    lite, package, version, errors = runtime()
    if lite is None:
        return np, None, f"no TFLite runtime for {sys.executable} ({'; '.join(errors)})"
    return np, (lite, package, version), None


def _load(np, rt, task: dict, signature: str | None = None):
    """The model in edgec's TFLite runner (loaded, every node prepared), or the error as data."""
    tflite = _tflite()
    _, package, version = rt
    runner = tflite.TFLite(task["model"], package=package, threads=int(task.get("threads") or 1),
                           delegate="none" if task.get("delegate") == "none" else "default", signature=signature)
    try:
        return runner.load(), None
    except Exception as exc:  # noqa: BLE001 - the runtime's own error text is the message
        why = getattr(exc, "reason", "") or tflite.reason_line(str(exc)) or type(exc).__name__
        ops = list(getattr(exc, "ops", None) or getattr(exc, "custom_ops", None) or tflite.custom_ops_in(str(exc)))
        return None, {"error": f"{package} {version} cannot load the model: {why}", "custom_ops": ops,
                      "runtime": package, "runtime_version": version}


def bench(task: dict) -> int:
    np, rt, missing = _needs(task)
    if missing:
        return _emit({"error": missing, "facts": facts()}, EXIT_MISSING)
    sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))
    from timing import LoopSettings, measure  # edgec/bench/timing.py, shipped beside this file

    before = facts()
    rss_before = _status_kb("VmRSS")
    reset = _reset_peak()
    runner, err = _load(np, rt, task)
    if err:
        return _emit({**err, "facts": before}, EXIT_LOAD)
    data = np.load(task["inputs"]) if task.get("inputs") else {}
    runner.set_inputs({t.name: np.asarray(data[t.name], dtype=t.dtype) for t in runner.inputs() if t.name in data})
    loop = LoopSettings(**task["loop"])
    t = measure(runner.invoke, loop)
    peak = _status_kb("VmHWM")
    memory = {"rss_before_mb": _mb(rss_before), "peak_rss_mb": _mb(peak),
              "increase_mb": _mb(peak - rss_before) if peak and rss_before else None,
              "method": "VmHWM on the device after clearing the peak (the runner process)" if reset else
              "VmHWM on the device of the runner process since it started"}
    return _emit({"samples_ns": t.samples_ns, "warmup_runs": t.warmup_runs, "warmup_s": t.warmup_s,
                  "loop_s": t.loop_s, "memory": memory, "facts": before, "thermal_after_c": thermal(),
                  "runtime": rt[1], "runtime_version": rt[2], "threads": int(task.get("threads") or 1),
                  "delegate": "none (reference kernels)" if task.get("delegate") == "none" else "default (XNNPACK)"})


def _mb(kb):
    return round(kb / 1024, 1) if kb is not None else None


def outputs(task: dict) -> int:
    """Raw input tensors in (``feeds.npz``: ``{sample}/{key}``), raw output tensors out (``outputs.npz``)."""
    np, rt, missing = _needs(task)
    if missing:
        return _emit({"error": missing, "facts": facts()}, EXIT_MISSING)
    runner, err = _load(np, rt, task, task.get("signature"))
    if err:
        return _emit(err, EXIT_LOAD)
    feeds = np.load(task["feeds"])
    samples, keys = int(task["samples"]), task["input_keys"]
    out: dict = {}
    t0 = time.perf_counter()
    raw = {t.name for t in runner.outputs()}  # raw tensors out: the host dequantizes
    for i in range(samples):
        res = runner.infer({k: feeds[f"{i}/{k}"] for k in keys}, raw=raw)
        for k, v in res.items():
            out[f"{i}/{k}"] = np.asarray(v)
    np.savez(task["outputs"], **out)
    return _emit({"samples": samples, "infer_seconds": round(time.perf_counter() - t0, 3), "runtime": rt[1],
                  "runtime_version": rt[2], "threads": int(task.get("threads") or 1)})


def main(argv: list[str]) -> int:
    with open(argv[1]) as f:
        task = json.load(f)
    limit = int(task.get("time_limit_s") or 0)
    if limit and hasattr(signal, "alarm"):
        signal.alarm(limit)  # SIGALRM's default action ends the process: never a runner left behind
    kind = task.get("task")
    if kind == "facts":
        return _emit({"facts": facts()})
    if kind == "bench":
        return bench(task)
    if kind == "outputs":
        return outputs(task)
    return _emit({"error": f"unknown task {kind!r}"}, 2)


if __name__ == "__main__":
    sys.exit(main(sys.argv))
