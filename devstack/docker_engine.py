"""The Docker engine the docker runtime needs: installed from Debian and started when missing.

`ensure_engine()` is what `ethgw up --runtime docker`, `ethgw cluster up --runtime docker` and
the Docker test fixture call. It is idempotent:

1. an engine that already answers (at DOCKER_HOST, else /var/run/docker.sock) is reused;
2. otherwise `dockerd` is installed when missing (`apt-get install docker.io`, after an
   `apt-get update` when the package lists are stale, as on a fresh CI machine);
3. and started in the background, in its own session, with the storage and network options
   this machine supports (vfs: no overlay inside the VM; no iptables, no bridge: containers
   use the host's network), its data root, pid file and log under ~/.cache/ethgw/docker, so
   the Geth image built once is there for every clone and every later run.

The start is serialised by a file lock, so two test sessions never start two daemons.
`stop_engine()` stops a daemon only when this process started it.
"""

from __future__ import annotations

import contextlib
import fcntl
import logging
import os
import shutil
import signal
import socket
import subprocess
import time
from collections import deque
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path

import docker
from docker.errors import DockerException

from geth_cluster.errors import DockerEngineError

log = logging.getLogger("ethgw.docker")

APT_INSTALL = ["apt-get", "install", "-y", "-o", "DPkg::Lock::Timeout=600", "docker.io"]
DOCKERD_OPTIONS = [
    "--storage-driver=vfs",
    "--iptables=false",
    "--ip6tables=false",
    "--bridge=none",
]
START_TIMEOUT_S = 60.0
DEFAULT_SOCKET = "unix:///var/run/docker.sock"
# The daemons this process started, kept so they are reaped (and Popen never warns) on stop.
_started: dict[int, subprocess.Popen[bytes]] = {}


def engine_dir() -> Path:
    """Where a dockerd we start keeps its data, pid and log (shared by every clone)."""
    cache = Path(os.environ.get("XDG_CACHE_HOME", Path.home() / ".cache"))
    return cache / "ethgw" / "docker"


@dataclass(frozen=True)
class Engine:
    """A Docker engine that answers; `started_pid` is set when this process started it."""

    started_pid: int | None
    seconds: float  # how long ensure_engine took (install and start included)


def engine_answers(timeout_s: float = 3.0) -> bool:
    """Whether a Docker engine answers a ping at the configured address."""
    host = os.environ.get("DOCKER_HOST", DEFAULT_SOCKET)
    if host.startswith("unix://"):
        # A raw ping: the SDK leaks a socket on every refused connection, and this is polled.
        return _ping_unix(host.removeprefix("unix://"), timeout_s)
    try:
        client = docker.from_env(timeout=int(max(1.0, timeout_s)))
    except DockerException:
        return False
    try:
        return bool(client.ping())
    except DockerException:
        return False
    finally:
        client.close()


def _ping_unix(path: str, timeout_s: float) -> bool:
    with socket.socket(socket.AF_UNIX, socket.SOCK_STREAM) as sock:
        sock.settimeout(timeout_s)
        try:
            sock.connect(path)
            sock.sendall(b"GET /_ping HTTP/1.0\r\nHost: docker\r\n\r\n")
            status_line = sock.recv(1024).split(b"\r\n", 1)[0]
        except OSError:
            return False
    return status_line.startswith(b"HTTP/1.") and b" 200" in status_line


def ensure_engine() -> Engine:
    """Reuse the running engine or install and start one; raises DockerEngineError."""
    began = time.monotonic()
    if engine_answers():
        return Engine(started_pid=None, seconds=time.monotonic() - began)
    folder = engine_dir()
    folder.mkdir(parents=True, exist_ok=True)
    with _locked(folder / "start.lock"):
        # Another session may have started it while we waited for the lock.
        if engine_answers():
            return Engine(started_pid=None, seconds=time.monotonic() - began)
        if os.environ.get("DOCKER_HOST"):
            raise DockerEngineError(
                f"no Docker engine answers at DOCKER_HOST={os.environ['DOCKER_HOST']}; "
                "unset it to let ethgw start a local dockerd"
            )
        dockerd = shutil.which("dockerd") or _install_docker()
        pid = _start_dockerd(dockerd, folder)
    log.info("docker engine started pid=%d seconds=%.1f", pid, time.monotonic() - began)
    return Engine(started_pid=pid, seconds=time.monotonic() - began)


def stop_engine(engine: Engine, timeout_s: float = 30.0) -> None:
    """Stop the daemon `engine` names if this process started it; else leave it running."""
    if engine.started_pid is None:
        return
    child = _started.pop(engine.started_pid, None)
    if child is None:
        return
    child.send_signal(signal.SIGTERM)  # dockerd stops its containers and containerd
    try:
        child.wait(timeout_s)
    except subprocess.TimeoutExpired:
        child.kill()
        child.wait(10)
    log.info("docker engine stopped pid=%d", engine.started_pid)


@contextlib.contextmanager
def _locked(path: Path) -> Iterator[None]:
    with path.open("w") as handle:
        fcntl.flock(handle, fcntl.LOCK_EX)
        try:
            yield
        finally:
            fcntl.flock(handle, fcntl.LOCK_UN)


def _install_docker() -> str:
    """`apt-get install docker.io`; refreshes the package lists first if that fails."""
    if os.geteuid() != 0:
        raise DockerEngineError(
            "dockerd is missing and installing it needs root: apt-get install -y docker.io"
        )
    log.info("installing docker.io from Debian (apt-get)")
    if _run(APT_INSTALL) != 0:
        # A fresh machine may have no package lists, or stale ones.
        _run(["apt-get", "update"])
        if _run(APT_INSTALL) != 0:
            raise DockerEngineError("apt-get install docker.io failed; see the output above")
    dockerd = shutil.which("dockerd")
    if dockerd is None:
        raise DockerEngineError("docker.io is installed but dockerd is not on PATH")
    return dockerd


def _run(command: list[str]) -> int:
    env = {**os.environ, "DEBIAN_FRONTEND": "noninteractive"}
    return subprocess.run(command, env=env, stdin=subprocess.DEVNULL, check=False).returncode


def _start_dockerd(dockerd: str, folder: Path) -> int:
    if os.geteuid() != 0:
        raise DockerEngineError("no Docker engine answers and starting dockerd needs root")
    log_path = folder / "dockerd.log"
    command = [
        dockerd,
        *DOCKERD_OPTIONS,
        f"--data-root={folder / 'data'}",
        f"--pidfile={folder / 'dockerd.pid'}",
    ]
    with log_path.open("ab") as log_file:
        child = subprocess.Popen(
            command,
            stdin=subprocess.DEVNULL,
            stdout=log_file,
            stderr=subprocess.STDOUT,
            start_new_session=True,  # outlives the command that started it
        )
    deadline = time.monotonic() + START_TIMEOUT_S
    while time.monotonic() < deadline:
        if engine_answers(timeout_s=2.0):
            _started[child.pid] = child
            return child.pid
        if child.poll() is not None:
            raise DockerEngineError(
                f"dockerd exited with code {child.returncode}; last lines of {log_path}:\n"
                + _tail(log_path)
            )
        time.sleep(0.3)
    child.terminate()
    child.wait(10)
    raise DockerEngineError(
        f"dockerd did not answer within {START_TIMEOUT_S:.0f}s; last lines of {log_path}:\n"
        + _tail(log_path)
    )


def _tail(path: Path, lines: int = 15) -> str:
    with path.open(errors="replace") as handle:
        return "".join(deque(handle, maxlen=lines))


__all__ = ["Engine", "engine_answers", "engine_dir", "ensure_engine", "stop_engine"]
