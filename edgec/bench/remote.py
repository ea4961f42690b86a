"""A board behind SSH (``--device ssh://USER@HOST[:PORT]``): the system OpenSSH client runs edgec's
runner (``device_runner.py``, ``timing.py`` and the runtime layer's ``tflite.py``) on it with the
board's own python and TFLite runtime.

Every call is ``ssh``/``scp`` with an argument list, ``BatchMode=yes`` (never a password prompt),
``ConnectTimeout`` and a per-call time limit, so ``~/.ssh/config``, agents and ProxyJump work as
they do for the user and nothing can hang. Each run gets its own temp dir on the board
(``mktemp -d``), removed afterwards whatever happened. Failures map to one-line ``DeviceError``s:
unreachable (exit 20), auth (21), missing runtime (22), time-out (23), runner crash (24).

``EDGEC_SSH_OPTIONS`` adds ssh options to every call (e.g. ``-o UserKnownHostsFile=FILE``).
"""

from __future__ import annotations

import json
import os
import shlex
import subprocess
import tempfile
from dataclasses import dataclass
from pathlib import Path
from urllib.parse import urlsplit

from edgec.errors import (DeviceAuthError, DeviceCrashError, DeviceRuntimeError, DeviceTimeoutError,
                      DeviceUnreachableError, UsageError)
from edgec.bench.devices import Device, Run
from edgec.bench.timing import LoopSettings, Timing

HERE = Path(__file__).resolve().parent
# The runner, its timing loop, and edgec's TFLite runner (shipped as tflite.py: stdlib + numpy).
RUNNER_FILES = (HERE / "device_runner.py", HERE / "timing.py", HERE.parent / "runtime" / "tflite.py")
MARK = "EDGEC-RESULT "
EXIT_MARK = "EDGEC-EXIT "
CONNECT_TIMEOUT_S = 10
SETUP_TIMEOUT_S = 60       # mktemp, copies, clean-up: each call
_UNREACHABLE = ("connection refused", "no route to host", "could not resolve hostname", "connection timed out",
                "operation timed out", "network is unreachable", "name or service not known",
                "connection closed by", "connection reset", "banner exchange", "kex_exchange_identification")
_AUTH = ("permission denied", "host key verification failed", "too many authentication failures",
         "no matching host key", "remote host identification has changed", "load key")


@dataclass(frozen=True)
class SSHTarget:
    user: str | None
    host: str
    port: int | None

    @property
    def dest(self) -> str:
        return f"{self.user}@{self.host}" if self.user else self.host

    def url(self) -> str:
        return f"ssh://{self.dest}{':%d' % self.port if self.port else ''}"


def parse_ssh_url(url: str) -> SSHTarget:
    parts = urlsplit(url)
    if parts.scheme != "ssh" or not parts.hostname:
        raise UsageError(f"--device '{url}' is not ssh://[USER@]HOST[:PORT]", hint="e.g. ssh://pi@raspberrypi.local")
    try:
        port = parts.port
    except ValueError:
        raise UsageError(f"--device '{url}': the port is not a number") from None
    return SSHTarget(parts.username, parts.hostname, port)


def classify(stderr: str, what: str, where: str):
    """The DeviceError for an ssh/scp failure (exit 255 or a refused copy), from its stderr."""
    low = stderr.lower()
    line = next((ln.strip() for ln in stderr.splitlines() if ln.strip()), "no message")
    if any(k in low for k in _AUTH):
        return DeviceAuthError(f"{what}: the device refused the login ({line})", where=where,
                               hint="check the user, --device-key FILE (or your ssh agent) and the host key "
                                    f"in known_hosts; try: {_by_hand(where)}")
    if any(k in low for k in _UNREACHABLE):
        return DeviceUnreachableError(f"{what}: cannot reach the device ({line})", where=where,
                                      hint="check the host name, port and network; is sshd running on it?")
    return DeviceUnreachableError(f"{what}: ssh failed ({line})", where=where,
                                  hint="run the same ssh command by hand to see why")


def _by_hand(url: str) -> str:
    t = parse_ssh_url(url)
    return f"ssh -o BatchMode=yes {'-p %d ' % t.port if t.port else ''}{t.dest} true"


class SSHDevice(Device):
    """``describe`` and ``run`` on a board over ssh; ``outputs`` runs raw inputs through a model there."""

    remote = True

    def __init__(self, url: str, python: str = "python3", key: str | None = None,
                 connect_timeout: float = CONNECT_TIMEOUT_S, timeout: float | None = None):
        self.target = parse_ssh_url(url)
        self.name = self.target.url()
        self.python = python or "python3"
        if key and not Path(key).expanduser().is_file():
            raise UsageError(f"--device-key '{key}' is not a file", where=key,
                             hint="pass the private key file the board accepts (or leave it out to use your agent)")
        self.key = str(Path(key).expanduser()) if key else None
        self.connect_timeout = connect_timeout
        self.timeout = timeout           # the run's limit; None: from the loop settings
        self._facts: dict | None = None
        self._ctl: str | None = None     # the control socket of this device's one ssh connection

    # -- the ssh/scp calls ------------------------------------------------------------------------
    def _options(self) -> list[str]:
        opts = ["-o", "BatchMode=yes", "-o", f"ConnectTimeout={int(self.connect_timeout)}",
                "-o", "ServerAliveInterval=5", "-o", "ServerAliveCountMax=3",
                "-o", "StrictHostKeyChecking=accept-new"]
        if self.key:
            opts += ["-i", self.key, "-o", "IdentitiesOnly=yes"]
        if self._ctl:
            opts += ["-o", f"ControlPath={self._ctl}", "-o", "ControlMaster=no"]
        return opts + shlex.split(os.environ.get("EDGEC_SSH_OPTIONS", ""))

    def connect(self) -> None:
        """Open one master connection (``ControlMaster``) that every later ssh/scp call of this device
        reuses: one handshake per run instead of one per call. Its errors are the connection's."""
        if self._ctl is not None:
            return
        import atexit

        ctl_dir = tempfile.mkdtemp(prefix="edgec-ssh-")
        ctl = os.path.join(ctl_dir, "ctl")
        port = ["-p", str(self.target.port)] if self.target.port else []
        cmd = ["ssh", *self._options(), "-o", "ControlMaster=yes", "-o", f"ControlPath={ctl}",
               "-o", "ControlPersist=120", "-fN", *port, self.target.dest]
        with tempfile.TemporaryFile("w+") as err:  # not a pipe: the backgrounded master keeps stderr open
            try:
                rc = subprocess.run(cmd, stdin=subprocess.DEVNULL, stdout=subprocess.DEVNULL, stderr=err,
                                    timeout=self.connect_timeout + 20).returncode
            except FileNotFoundError:
                from edgec.errors import DependencyError

                os.rmdir(ctl_dir)
                raise DependencyError("the OpenSSH client ('ssh') is not installed here",
                                      hint="install it: apt-get install openssh-client") from None
            except subprocess.TimeoutExpired:
                os.rmdir(ctl_dir)
                raise DeviceTimeoutError(f"connecting ran past {self.connect_timeout + 20:.0f} s", where=self.name,
                                         hint="check the network and the host") from None
            err.seek(0)
            text = err.read()
        if rc != 0:
            os.rmdir(ctl_dir)
            raise classify(text, "connecting", self.name)
        self._ctl = ctl
        atexit.register(self.close)

    def close(self) -> None:
        """End the master connection (its socket and temp dir go with it)."""
        ctl, self._ctl = self._ctl, None
        if not ctl:
            return
        port = ["-p", str(self.target.port)] if self.target.port else []
        try:
            subprocess.run(["ssh", "-o", f"ControlPath={ctl}", "-O", "exit", *port, self.target.dest],
                           stdin=subprocess.DEVNULL, stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL, timeout=10)
        except (OSError, subprocess.TimeoutExpired):
            pass
        import shutil

        shutil.rmtree(os.path.dirname(ctl), ignore_errors=True)

    def _ssh_cmd(self, remote: str) -> list[str]:
        port = ["-p", str(self.target.port)] if self.target.port else []
        return ["ssh", *self._options(), *port, self.target.dest, remote]

    def _scp_cmd(self, sources: list[str], dest: str) -> list[str]:
        port = ["-P", str(self.target.port)] if self.target.port else []
        return ["scp", "-q", *self._options(), *port, *sources, dest]

    def _call(self, cmd: list[str], what: str, timeout: float) -> subprocess.CompletedProcess:
        try:
            p = subprocess.run(cmd, capture_output=True, text=True, timeout=timeout, stdin=subprocess.DEVNULL)
        except FileNotFoundError:
            from edgec.errors import DependencyError

            raise DependencyError(f"the OpenSSH client ('{cmd[0]}') is not installed here",
                                  hint="install it: apt-get install openssh-client") from None
        except subprocess.TimeoutExpired:
            raise DeviceTimeoutError(f"{what} ran past its {timeout:.0f} s limit and was stopped", where=self.name,
                                     hint="the board may be overloaded or the network slow; a longer run takes "
                                          "--device-timeout S") from None
        if p.returncode == 255 or (cmd[0] == "scp" and p.returncode != 0):
            raise classify(p.stderr, what, self.name)
        return p

    def _remote(self, argv: list[str], what: str, timeout: float = SETUP_TIMEOUT_S) -> subprocess.CompletedProcess:
        return self._call(self._ssh_cmd(" ".join(shlex.quote(a) for a in argv)), what, timeout)

    # -- a per-run temp dir ------------------------------------------------------------------------
    def _session(self):
        return _RemoteDir(self)

    def _run_task(self, task: dict, files: list[Path], timeout: float, pull: dict | None = None) -> dict:
        """Copy the runner, ``files`` and the task to a fresh dir, run it, copy ``pull`` ({remote
        name: local path}) back; the runner's result."""
        with self._session() as rdir, tempfile.TemporaryDirectory(prefix="edgec-ssh-") as tmp:
            task = {**task, "time_limit_s": int(timeout)}
            for k in ("model", "inputs", "feeds", "outputs"):
                if task.get(k):
                    task[k] = f"{rdir.path}/{task[k]}"
            tpath = Path(tmp) / "task.json"
            tpath.write_text(json.dumps(task))
            rdir.push([*RUNNER_FILES, *files, tpath], "copying the runner and the model")
            p = self._call(self._ssh_cmd(self._runner_line(rdir.path)), "the runner", timeout + 15)
            result = self._result(p)
            for name, local in (pull or {}).items():
                rdir.pull(name, Path(local))
            return result

    def _runner_line(self, rdir: str) -> str:
        """The remote shell line: the runner, then its exit status (the shell outlives a runner killed
        by a signal, so 128+N comes back; ssh alone would only say 255)."""
        return (f"cd {shlex.quote(rdir)} && {shlex.quote(self.python)} device_runner.py task.json; "
                f"echo \"{EXIT_MARK}$?\"")

    def _result(self, p: subprocess.CompletedProcess) -> dict:
        status = next((ln[len(EXIT_MARK):].strip() for ln in reversed(p.stdout.splitlines())
                       if ln.startswith(EXIT_MARK)), None)
        if status is not None and status.isdigit():
            p = subprocess.CompletedProcess(p.args, int(status), p.stdout, p.stderr)
        line = next((ln for ln in reversed(p.stdout.splitlines()) if ln.startswith(MARK)), None)
        tail = _tail(p.stderr)
        if p.returncode == 127 or (line is None and "not found" in p.stderr.lower() and p.returncode in (126, 127)):
            raise DeviceRuntimeError(f"the board has no python at '{self.python}' ({tail})", where=self.name,
                                     hint="pass the board's interpreter with --device-python PATH")
        if line is None:
            how = f"was killed by signal {p.returncode - 128}" if p.returncode > 128 else \
                f"exited with status {p.returncode}"
            if p.returncode == 128 + 14:  # SIGALRM: the runner's own time limit
                raise DeviceTimeoutError("the runner on the board ran past its time limit and stopped itself (SIGALRM)",
                                         where=self.name,
                                         hint="a longer run takes --device-timeout S")
            raise DeviceCrashError(f"the runner on the board {how} without a result"
                                   f"{'; its stderr: ' + tail if tail else ''}", where=self.name,
                                   hint="rerun with --debug; run the model with the board's runtime by hand")
        try:
            result = json.loads(line[len(MARK):])
        except json.JSONDecodeError as exc:
            raise DeviceCrashError(f"the runner's result is not JSON ({exc})", where=self.name) from None
        if p.returncode == 3:
            raise DeviceRuntimeError(f"{result['error']}", where=self.name,
                                     hint="install numpy and ai-edge-litert (or tflite-runtime) for that python "
                                          "on the board, or point --device-python at one that has them")
        if p.returncode == 4:
            from edgec.errors import UnsupportedModelError, UnsupportedOpsError

            if result.get("custom_ops"):
                rt = f"{result.get('runtime')} {result.get('runtime_version')} on {self.name}"
                raise UnsupportedOpsError(f"TFLite runtime ({rt})", {op: ["(named by the board's runtime)"]
                                                                    for op in result["custom_ops"]},
                                          where=self.name, hint="the board's runtime has no kernel for these "
                                          "custom ops: run the model with a runtime built with them registered "
                                          "or a delegate that provides them, or convert the model without them")
            raise UnsupportedModelError(f"on the board: {result['error']}", where=self.name,
                                        hint="the board's runtime is older than the ops need: see `edgec bench "
                                             "--target` compat, or update the runtime on the board")
        if p.returncode != 0:
            raise DeviceCrashError(f"the runner failed with status {p.returncode}: {result.get('error')}",
                                   where=self.name)
        return result

    # -- the Device interface ----------------------------------------------------------------------
    def describe(self) -> dict:
        if self._facts is None:
            with self._session() as rdir, tempfile.TemporaryDirectory(prefix="edgec-ssh-") as tmp:
                tpath = Path(tmp) / "task.json"
                tpath.write_text(json.dumps({"task": "facts", "time_limit_s": SETUP_TIMEOUT_S}))
                rdir.push([*RUNNER_FILES, tpath], "copying the runner")
                p = self._call(self._ssh_cmd(self._runner_line(rdir.path)), "reading the device's facts",
                               SETUP_TIMEOUT_S)
                facts = self._result(p)["facts"]
            self._facts = {"device": self.name, "transport": "ssh (system OpenSSH client)",
                           "device_python": self.python, **facts}
        return self._facts

    def cores(self) -> int | None:
        return self.describe().get("cores")

    def runtime(self) -> tuple[str | None, str | None]:
        f = self.describe()
        return f.get("runtime"), f.get("runtime_version")

    def run(self, path, runtime, threads, delegate, loop: LoopSettings, inputs=None, seed=0) -> Run:
        if runtime != "tflite":
            raise UsageError(f"a device over ssh runs TFLite models, not {runtime}", where=str(path))
        import numpy as np

        from edgec.bench.runtimes import make_inputs
        from edgec.formats import TensorSpec
        from edgec.formats.tflite import read_tflite

        info = read_tflite(Path(path))
        specs = [TensorSpec(t.name, tuple(t.shape), t.dtype) for t in info.inputs]
        feed, source = make_inputs(specs, inputs, seed)
        limit = self.timeout or (loop.warmup_s + loop.max_seconds + 120)
        with tempfile.TemporaryDirectory(prefix="edgec-ssh-in-") as tmp:
            model = Path(tmp) / "model.tflite"
            model.write_bytes(Path(path).read_bytes())
            npz = Path(tmp) / "inputs.npz"
            np.savez(npz, **feed)
            dev = "none" if delegate == "none" else "default"
            task = {"task": "bench", "model": "model.tflite", "inputs": "inputs.npz", "threads": threads,
                    "delegate": dev, "loop": loop.to_dict()}
            res = self._run_task(task, [model, npz], limit)
        facts = {**self.describe(), "thermal_before_c": res["facts"].get("thermal_c"),
                 "thermal_after_c": res.get("thermal_after_c"), "load_avg_1_5_15": res["facts"].get("load_avg_1_5_15")}
        self._facts = facts
        notes = []
        if delegate in ("gpu", "nnapi"):
            notes.append(f"the profile's {delegate} delegate is not used by the ssh runner: measured on the "
                         "board's CPU with the runtime's default delegate (XNNPACK)")
        from edgec.bench.runtimes import Session

        rows = [{"name": s.name, "shape": list(s.shape), "dtype": s.dtype} for s in specs]
        session = Session(None, res["runtime"], res["runtime_version"], res["delegate"], res["threads"], rows, notes)
        timing = Timing(res["samples_ns"], res["warmup_runs"], res["warmup_s"], res["loop_s"])
        return Run(timing, res["memory"], session, source, after=facts)

    def outputs(self, model: Path, feeds_npz: Path, samples: int, input_keys: list[str], signature: str | None,
                threads: int, dest: Path, timeout: float = 600) -> dict:
        """Run raw input tensors through ``model`` on the board; the outputs land in ``dest`` (.npz)."""
        with tempfile.TemporaryDirectory(prefix="edgec-ssh-in-") as tmp:
            m = Path(tmp) / "model.tflite"
            m.write_bytes(Path(model).read_bytes())
            f = Path(tmp) / "feeds.npz"
            f.write_bytes(Path(feeds_npz).read_bytes())
            task = {"task": "outputs", "model": "model.tflite", "feeds": "feeds.npz", "outputs": "outputs.npz",
                    "samples": samples, "input_keys": input_keys, "signature": signature, "threads": threads}
            return self._run_task(task, [m, f], timeout, pull={"outputs.npz": dest})


class _RemoteDir:
    """``mktemp -d`` on the board; removed on exit (also after a failure)."""

    def __init__(self, device: SSHDevice):
        self.device = device
        self.path = ""

    def __enter__(self):
        self.device.connect()
        p = self.device._remote(["mktemp", "-d", "/tmp/edgec-run.XXXXXXXX"], "creating a temp dir on the device")
        self.path = p.stdout.strip().splitlines()[-1] if p.stdout.strip() else ""
        if p.returncode != 0 or not self.path.startswith("/tmp/edgec-run."):
            raise DeviceCrashError(f"mktemp on the device failed ({_tail(p.stderr) or p.stdout.strip()})",
                                   where=self.device.name)
        return self

    def push(self, files: list[Path], what: str) -> None:
        self.device._call(self.device._scp_cmd([str(f) for f in files], f"{self.device.target.dest}:{self.path}/"),
                          what, SETUP_TIMEOUT_S + sum(Path(f).stat().st_size for f in files) / 1e6)

    def pull(self, name: str, local: Path) -> None:
        self.device._call(self.device._scp_cmd([f"{self.device.target.dest}:{self.path}/{name}"], str(local)),
                          f"copying {name} back", SETUP_TIMEOUT_S)

    def __exit__(self, *exc):
        if self.path:
            try:
                self.device._remote(["rm", "-rf", self.path], "removing the temp dir on the device")
            except Exception:  # noqa: BLE001 - the clean-up never hides the run's own error
                pass
        return False


def _tail(text: str, n: int = 300) -> str:
    lines = [ln.strip() for ln in (text or "").splitlines() if ln.strip()]
    out = " | ".join(lines[-3:])
    return out[-n:]


def board_compat(path: Path, target, device, record: dict) -> dict:
    """The runtime/op-version check against the runtime the board actually runs (not the profile's),
    with the board's own load of the model as the load result."""
    from dataclasses import replace

    from edgec.targets.compat import check_artifact

    package, version = device.runtime()
    if package == "benchmark_model":  # adb: the binary prints no version; the profile's version, the phone's load
        rec = check_artifact(path, target, load=False)
        rec["load"] = {"attempted": True, "package": package, "where": device.name,
                       "loaded": bool(record.get("available"))}
        rec["ok"] = not rec.get("too_new") and rec["load"]["loaded"]
        return rec
    tf_numbered = package == "tflite-runtime"  # ai-edge-litert has its own numbering: no op table for it
    rt = replace(target.runtime, on_device=f"{package} {version} on {device.name}", on_device_package="",
                 on_device_version=version if tf_numbered and version else "")
    rec = check_artifact(path, replace(target, runtime=rt), load=False)
    rec["load"] = {"attempted": True, "package": package, "version": version, "where": device.name,
                   "loaded": bool(record.get("available")), **({} if record.get("available") else
                                                               {"error": record.get("reason", "")})}
    if not tf_numbered:
        rec["note"] = (f"{package} {version} is not numbered like TensorFlow: the op-version table does not apply; "
                       "the board's own load of the model is the check")
    rec["checked"] = True
    rec["ok"] = not rec.get("too_new") and rec["load"]["loaded"]
    return rec
