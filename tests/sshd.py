"""A real OpenSSH server on a loopback port for the device tests: Debian's ``/usr/sbin/sshd``
with throwaway host and user keys made by ``ssh-keygen`` in a temp dir. No stub: the tests reach it
with the system ``ssh``/``scp`` exactly as edgec reaches a Raspberry Pi."""

from __future__ import annotations

import getpass
import os
import shutil
import socket
import subprocess
import time
from pathlib import Path

SSHD = "/usr/sbin/sshd"


def free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


def keygen(path: Path) -> Path:
    subprocess.run(["ssh-keygen", "-q", "-t", "ed25519", "-N", "", "-f", str(path)], check=True,
                   capture_output=True, timeout=30)
    os.chmod(path, 0o600)
    return path


class Sshd:
    """``with Sshd(tmp) as s:`` a running sshd; ``s.url``, ``s.key`` (accepted), ``s.env`` (known_hosts)."""

    def __init__(self, root: Path):
        missing = [t for t in (SSHD, shutil.which("ssh"), shutil.which("scp"), shutil.which("ssh-keygen"))
                   if not t or not os.path.exists(t)]
        if missing:  # never a skip: the device tests need the real server (scripts/setup.sh --test installs it)
            raise RuntimeError(f"OpenSSH is not installed ({SSHD}, ssh, scp, ssh-keygen); run scripts/setup.sh --test "
                               "or apt-get install openssh-server openssh-client")
        self.root = Path(root)
        self.root.mkdir(parents=True, exist_ok=True)
        os.chmod(self.root, 0o700)
        self.port = free_port()
        self.user = getpass.getuser()
        self.host_key = keygen(self.root / "host_ed25519")
        self.key = keygen(self.root / "user_ed25519")
        self.wrong_key = keygen(self.root / "other_ed25519")
        (self.root / "authorized_keys").write_text((self.root / "user_ed25519.pub").read_text())
        os.chmod(self.root / "authorized_keys", 0o600)
        self.known_hosts = self.root / "known_hosts"
        self.config = self.root / "sshd_config"
        self.config.write_text("\n".join([
            f"Port {self.port}", "ListenAddress 127.0.0.1", f"HostKey {self.host_key}",
            f"AuthorizedKeysFile {self.root / 'authorized_keys'}", "PasswordAuthentication no",
            "KbdInteractiveAuthentication no", "PubkeyAuthentication yes", "PermitRootLogin prohibit-password",
            "StrictModes no", "UsePAM no", f"PidFile {self.root / 'sshd.pid'}", "LogLevel ERROR",
            "Subsystem sftp internal-sftp", "MaxStartups 50", ""]))
        self.proc: subprocess.Popen | None = None

    @property
    def url(self) -> str:
        return f"ssh://{self.user}@127.0.0.1:{self.port}"

    @property
    def env(self) -> dict:
        """What the tests' edgec processes get: a known_hosts of this server's throwaway key only."""
        return {**os.environ, "EDGEC_SSH_OPTIONS": f"-o UserKnownHostsFile={self.known_hosts}"}

    def __enter__(self) -> "Sshd":
        if os.geteuid() == 0:  # sshd's privilege-separation directory (a non-root sshd does not use it)
            os.makedirs("/run/sshd", exist_ok=True)
        self.proc = subprocess.Popen([SSHD, "-D", "-e", "-f", str(self.config)], stdout=subprocess.DEVNULL,
                                     stderr=open(self.root / "sshd.log", "w"))
        deadline = time.monotonic() + 15
        while time.monotonic() < deadline:
            if self.proc.poll() is not None:
                raise RuntimeError(f"sshd exited: {(self.root / 'sshd.log').read_text()}")
            try:
                with socket.create_connection(("127.0.0.1", self.port), timeout=0.5) as s:
                    if s.recv(4).startswith(b"SSH-"):
                        return self
            except OSError:
                time.sleep(0.1)
        self.__exit__()
        raise RuntimeError("sshd did not start within 15 s")

    def __exit__(self, *exc) -> None:
        if self.proc and self.proc.poll() is None:
            self.proc.terminate()
            try:
                self.proc.wait(timeout=10)
            except subprocess.TimeoutExpired:
                self.proc.kill()
                self.proc.wait()
