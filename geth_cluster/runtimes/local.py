"""Geth nodes as local processes: detached, one pid file per node folder."""

from __future__ import annotations

import asyncio
import contextlib
import signal
import subprocess
from collections import deque
from pathlib import Path

import psutil

from geth_cluster.cgroups import NodeCgroups
from geth_cluster.errors import NodeAllotmentError, ToolMissingError
from geth_cluster.layout import NodeSpec
from geth_cluster.runtimes.base import NodeRuntime
from geth_cluster.stats import ProcessSampler

LOG_NAME = "geth.log"
PID_NAME = "geth.pid"


class LocalProcessRuntime(NodeRuntime):
    """Runs each node as a child process in its own session, so it outlives the
    command that started it (`ethgw cluster up` returns) and a Ctrl-C aimed at
    the launcher reaches the nodes only through an orderly stop.

    With `cgroups`, each service node runs confined to its allotment, as a container would
    (ClusterSettings.process_node_cgroup); the sealer, the chain's clock, is left uncapped."""

    name = "process"

    def __init__(self, geth_binary: Path, cgroups: NodeCgroups | None = None) -> None:
        self._geth = geth_binary
        self._cgroups = cgroups
        self._children: dict[str, subprocess.Popen[bytes]] = {}
        # How a child of ours ended, for the "exited during start" message: a negative
        # code names the signal that ended it (someone else's stop, the OOM killer).
        self._exit_codes: dict[str, int] = {}

    @property
    def cgroups(self) -> NodeCgroups | None:
        """The node cgroups the service nodes run confined in, if any."""
        return self._cgroups

    def _require_geth(self) -> None:
        if not self._geth.is_file():
            raise ToolMissingError(
                f"geth not found at {self._geth}: run `make bootstrap` to build it"
            )

    async def run_once(self, spec: NodeSpec, geth_args: list[str]) -> tuple[int, str]:
        self._require_geth()
        process = await asyncio.create_subprocess_exec(
            str(self._geth),
            *geth_args,
            stdout=asyncio.subprocess.PIPE,
            stderr=asyncio.subprocess.STDOUT,
        )
        output, _ = await process.communicate()
        return int(process.returncode or 0), output.decode(errors="replace")

    async def start(self, spec: NodeSpec, geth_args: list[str]) -> None:
        self._require_geth()
        spec.datadir.mkdir(parents=True, exist_ok=True)
        child = await asyncio.to_thread(self._spawn, spec, geth_args)
        self._children[spec.name] = child
        self._exit_codes.pop(spec.name, None)
        (spec.datadir / PID_NAME).write_text(str(child.pid))
        if self._cgroups is not None and not spec.is_sealer:
            try:
                await asyncio.to_thread(self._cgroups.confine, spec.name, child.pid)
            except OSError as error:
                child.kill()  # a node meant to be capped must not serve uncapped
                await self._reap(spec)
                (spec.datadir / PID_NAME).unlink(missing_ok=True)
                raise NodeAllotmentError(
                    f"{spec.name}: no cgroup for its allotment ({error}); "
                    "ETHGW_CLUSTER_PROCESS_NODE_CGROUP needs a writable /sys/fs/cgroup"
                ) from error

    def _spawn(self, spec: NodeSpec, geth_args: list[str]) -> subprocess.Popen[bytes]:
        with (spec.datadir / LOG_NAME).open("ab") as log:
            return subprocess.Popen(
                [str(self._geth), *geth_args],
                stdin=subprocess.DEVNULL,
                stdout=log,
                stderr=subprocess.STDOUT,
                start_new_session=True,
            )

    async def stop(self, spec: NodeSpec, timeout_s: float = 30.0) -> None:
        process = self._process(spec)
        if process is not None:
            with contextlib.suppress(psutil.NoSuchProcess):
                process.send_signal(signal.SIGTERM)
                if not await _wait_gone(process, timeout_s):
                    process.kill()
                    await _wait_gone(process, 5.0)
        await self._reap(spec)
        (spec.datadir / PID_NAME).unlink(missing_ok=True)
        if self._cgroups is not None and not spec.is_sealer:
            await asyncio.to_thread(self._cgroups.release, spec.name)

    async def _reap(self, spec: NodeSpec) -> None:
        """Collect our child (in a thread: wait() blocks), so no Popen outlives it."""
        child = self._children.pop(spec.name, None)
        if child is None:
            return
        if child.poll() is None:
            child.kill()
        with contextlib.suppress(subprocess.TimeoutExpired):
            await asyncio.to_thread(child.wait, 10)

    async def is_running(self, spec: NodeSpec) -> bool:
        return self._process(spec) is not None

    def pid(self, spec: NodeSpec) -> int | None:
        process = self._process(spec)
        return None if process is None else int(process.pid)

    def _process(self, spec: NodeSpec) -> psutil.Process | None:
        """The live geth process of this node folder; a stale pid file counts as none."""
        child = self._children.get(spec.name)
        if child is not None and child.poll() is not None:
            self._children.pop(spec.name)
            self._exit_codes[spec.name] = int(child.returncode)
            child = None
        pid_file = spec.datadir / PID_NAME
        try:
            pid = int(pid_file.read_text())
            if child is not None and child.pid == pid:
                # Our own live child needs no command-line check: right after exec the
                # kernel can show an empty /proc/<pid>/cmdline (the new image's arguments
                # are not mapped yet), which once made a starting node look dead.
                return psutil.Process(pid)
            process = psutil.Process(pid)
            # A pid can be reused by an unrelated process after a reboot.
            alive = process.status() != psutil.STATUS_ZOMBIE
            ours = str(spec.datadir) in " ".join(process.cmdline())
        except (FileNotFoundError, ValueError, psutil.Error):
            return None
        return process if alive and ours else None

    def sampler(self, spec: NodeSpec, memory_budget_mb: float, cpu_cores: float) -> ProcessSampler:
        pid = self.pid(spec)
        if pid is None:
            raise psutil.NoSuchProcess(pid=-1, name=spec.name, msg="node is not running")
        return ProcessSampler(pid, memory_budget_mb, cpu_cores)

    async def close(self) -> None:
        """Nothing to release: the node processes outlive the runtime object."""

    def log_tail(self, spec: NodeSpec, lines: int = 20) -> str:
        path = spec.datadir / LOG_NAME
        tail = ""
        if path.exists():
            with path.open(errors="replace") as handle:
                tail = "".join(deque(handle, maxlen=lines))
        code = self._exit_codes.get(spec.name)
        return tail if code is None else tail + f"[geth {_describe_exit(code)}]\n"


async def _wait_gone(process: psutil.Process, timeout_s: float) -> bool:
    """Poll until the process has exited (zombies count as exited)."""
    deadline = asyncio.get_running_loop().time() + timeout_s
    while asyncio.get_running_loop().time() < deadline:
        try:
            if process.status() == psutil.STATUS_ZOMBIE:
                return True
        except psutil.NoSuchProcess:
            return True
        await asyncio.sleep(0.1)
    return False


def _describe_exit(code: int) -> str:
    """'exited with status 1', or 'was killed by SIGTERM' for a negative Popen code."""
    if code >= 0:
        return f"exited with status {code}"
    try:
        return f"was killed by {signal.Signals(-code).name}"
    except ValueError:
        return f"was killed by signal {-code}"


__all__ = ["LocalProcessRuntime"]
