"""Start, probe and stop the local environment's server processes."""

from __future__ import annotations

import contextlib
import os
import signal
import socket
import ssl
import subprocess
import time
import urllib.error
import urllib.request
from dataclasses import asdict, dataclass, field
from pathlib import Path
from typing import Any


class StartError(RuntimeError):
    """A server did not become ready; the message carries the tail of its log."""


def free_port() -> int:
    with socket.socket(socket.AF_INET, socket.SOCK_STREAM) as s:
        s.bind(("127.0.0.1", 0))
        return int(s.getsockname()[1])


def port_in_use(port: int) -> bool:
    with socket.socket(socket.AF_INET, socket.SOCK_STREAM) as s:
        s.settimeout(0.2)
        return s.connect_ex(("127.0.0.1", port)) == 0


def log_tail(path: Path, lines: int = 25) -> str:
    try:
        return "\n".join(path.read_text(errors="replace").splitlines()[-lines:])
    except OSError:
        return "(no log)"


def pid_alive(pid: int | None) -> bool:
    if not pid:
        return False
    try:
        os.kill(pid, 0)
    except ProcessLookupError:
        return False
    except PermissionError:
        return True
    # A zombie child still answers kill(0); treat it as gone.
    try:
        with open(f"/proc/{pid}/stat") as f:
            return f.read().split(")")[-1].split()[0] != "Z"
    except OSError:
        return False


@dataclass
class Component:
    """One server process: how to start it and how to tell it is ready."""

    name: str
    argv: list[str]
    log: str
    port: int
    ready_url: str
    ca_file: str | None = None
    client_cert: str | None = None
    client_key: str | None = None
    env: dict[str, str] = field(default_factory=dict)
    pid: int | None = None
    # kube-controller-manager serves /healthz with a self-signed certificate it makes itself.
    self_signed: bool = False

    def to_dict(self) -> dict[str, Any]:
        return asdict(self)

    @classmethod
    def from_dict(cls, d: dict[str, Any]) -> Component:
        return cls(**d)

    def alive(self) -> bool:
        return pid_alive(self.pid)

    def ready(self) -> bool:
        ctx: ssl.SSLContext | None = None
        if self.ready_url.startswith("https") and self.self_signed:
            ctx = ssl.create_default_context()
            ctx.check_hostname = False
            ctx.verify_mode = ssl.CERT_NONE
        elif self.ready_url.startswith("https"):
            ctx = ssl.create_default_context(cafile=self.ca_file)
            if self.client_cert and self.client_key:
                ctx.load_cert_chain(self.client_cert, self.client_key)
        try:
            with urllib.request.urlopen(self.ready_url, timeout=2, context=ctx) as resp:
                return int(resp.status) == 200
        except urllib.error.HTTPError as e:
            # An S3 server answers an anonymous request with 403: it is serving.
            return (self.name == "s3" or self.name.startswith("s3-")) and e.code in (400, 403)
        except (OSError, ssl.SSLError):
            return False

    def start(self, timeout: float = 90.0) -> None:
        if self.alive():
            return
        if port_in_use(self.port):
            raise StartError(f"{self.name}: port 127.0.0.1:{self.port} is already in use by another process")
        log = open(self.log, "ab")  # noqa: SIM115 - handed to the child
        try:
            proc = subprocess.Popen(
                self.argv,
                stdout=log,
                stderr=subprocess.STDOUT,
                stdin=subprocess.DEVNULL,
                env={**os.environ, **self.env},
                # Own session: survives the CLI that started it, and Ctrl-C in a
                # terminal does not reach it (cleanup is explicit).
                start_new_session=True,
            )
        finally:
            log.close()
        self.pid = proc.pid
        deadline = time.monotonic() + timeout
        while time.monotonic() < deadline:
            if proc.poll() is not None:
                raise StartError(
                    f"{self.name} exited with code {proc.returncode} during start; last lines of {self.log}:\n"
                    + log_tail(Path(self.log))
                )
            if self.ready():
                return
            time.sleep(0.25)
        self.stop()
        raise StartError(
            f"{self.name} not ready after {timeout:.0f}s; last lines of {self.log}:\n" + log_tail(Path(self.log))
        )

    def stop(self, sig: int = signal.SIGTERM, timeout: float = 15.0) -> None:
        """Stop exactly the process this component started (by pid)."""
        pid = self.pid
        if not pid or not self.alive():
            self.pid = None
            return
        with contextlib.suppress(ProcessLookupError):
            os.kill(pid, sig)
        deadline = time.monotonic() + timeout
        while time.monotonic() < deadline and pid_alive(pid):
            _reap(pid)
            time.sleep(0.1)
        if pid_alive(pid):
            with contextlib.suppress(ProcessLookupError):
                os.kill(pid, signal.SIGKILL)
            time.sleep(0.2)
        _reap(pid)
        self.pid = None


def _reap(pid: int) -> None:
    with contextlib.suppress(ChildProcessError):
        os.waitpid(pid, os.WNOHANG)
