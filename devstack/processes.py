"""The stack's Python services as child processes, each with a log file and a pid
file (so `ethgw down` can stop what a crashed `ethgw up` left behind), and the
`Supervisor` that starts a dead one again (`devstack.restart_policy` says when)."""

from __future__ import annotations

import asyncio
import contextlib
import os
import signal
import subprocess
import sys
import time
from collections.abc import Callable, Mapping, Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import Literal, Protocol

import httpx
import psutil

from devstack.errors import StackError
from devstack.kafka_broker import KafkaBroker
from devstack.restart_policy import Restart, RestartHistory, RestartPolicy
from service_kit.logs import get_logger

log = get_logger("ethgw.stack")


class ServiceProcess:
    def __init__(
        self, name: str, module: str, env: Mapping[str, str], health_url: str, run_dir: Path
    ) -> None:
        self.name = name
        self.module = module
        self.health_url = health_url
        self.log_path = run_dir / f"{name}.log"
        self.pid_path = run_dir / f"{name}.pid"
        self._env = {**os.environ, **env}
        self._process: subprocess.Popen[bytes] | None = None
        self._log_offset = 0

    async def start(self) -> None:
        self.log_path.parent.mkdir(parents=True, exist_ok=True)
        self._log_offset = self.log_path.stat().st_size if self.log_path.exists() else 0
        self._process = await asyncio.to_thread(self._spawn)
        self.pid_path.write_text(str(self._process.pid))

    def _spawn(self) -> subprocess.Popen[bytes]:
        with self.log_path.open("ab") as log:
            return subprocess.Popen(
                [sys.executable, "-m", self.module],
                env=self._env,
                stdin=subprocess.DEVNULL,
                stdout=log,
                stderr=subprocess.STDOUT,
                start_new_session=True,
            )

    async def wait_healthy(self, timeout_s: float = 60.0) -> None:
        deadline = asyncio.get_running_loop().time() + timeout_s
        async with httpx.AsyncClient(timeout=2) as client:
            while asyncio.get_running_loop().time() < deadline:
                if self._process is not None and self._process.poll() is not None:
                    raise StackError(f"{self.name} exited; see {self.log_path}")
                with contextlib.suppress(httpx.HTTPError):
                    if (await client.get(self.health_url)).status_code == 200:
                        return
                await asyncio.sleep(0.3)
        raise StackError(f"{self.name} not healthy after {timeout_s:.0f}s; see {self.log_path}")

    @property
    def pid(self) -> int | None:
        """The pid while the process runs, else None."""
        return self._process.pid if self.alive and self._process is not None else None

    def log_since_start(self) -> str:
        """What the process wrote to its log since its latest start."""
        if not self.log_path.exists():
            return ""
        with self.log_path.open("rb") as log:
            log.seek(self._log_offset)
            return log.read().decode(errors="replace")

    async def kill(self) -> None:
        """kill -9: no drain, no commit, no deregistration; what a crash looks like."""
        if self._process is not None and self._process.poll() is None:
            self._process.kill()
            await asyncio.to_thread(self._process.wait, 10)
        self.pid_path.unlink(missing_ok=True)

    @property
    def alive(self) -> bool:
        return self._process is not None and self._process.poll() is None

    @property
    def exit_code(self) -> int | None:
        """How the latest start ended (-9: SIGKILL); None while it runs or before a start."""
        return None if self._process is None else self._process.poll()

    async def stop(self, timeout_s: float = 20.0) -> None:
        if self._process is not None:
            await asyncio.to_thread(terminate, self._process, timeout_s)
        self.pid_path.unlink(missing_ok=True)


class BrokerProcess:
    """The Kafka broker as a process the supervisor watches and starts again."""

    name = "kafka"

    def __init__(self, broker: KafkaBroker) -> None:
        self.broker = broker

    @property
    def alive(self) -> bool:
        return self.broker.is_running()

    @property
    def exit_code(self) -> int | None:
        return self.broker.exit_code()

    async def start(self) -> None:
        """Start the broker and wait until it serves (its topics and data are on disk)."""
        await asyncio.to_thread(self.broker.start)


class Supervised(Protocol):
    """A process the supervisor can watch and start again."""

    @property
    def name(self) -> str: ...

    @property
    def alive(self) -> bool: ...

    @property
    def exit_code(self) -> int | None: ...

    async def start(self) -> None: ...


Phase = Literal["up", "waiting", "starting"]


@dataclass
class _Watch:
    """What the supervisor knows of one process."""

    process: Supervised
    started_at: float
    history: RestartHistory = field(default_factory=RestartHistory)
    phase: Phase = "up"
    crash_loop: bool = False
    next_start_at: float = 0.0


class Supervisor:
    """Starts again every process of `processes` that dies, as compose's `restart:
    unless-stopped` would, until `stop()`: one watching task per process.

    `stop()` comes before the stack stops its processes, so nothing being stopped is started
    again; a start under way is finished first, so no process is left without an owner."""

    def __init__(
        self,
        processes: Sequence[Supervised],
        policy: RestartPolicy | None = None,
        *,
        poll_s: float = 0.5,
        clock: Callable[[], float] = time.monotonic,
    ) -> None:
        self._policy = policy or RestartPolicy()
        self._poll_s = poll_s
        self._clock = clock
        self._watches = [_Watch(p, clock()) for p in processes]
        self._stopping = asyncio.Event()
        self._tasks: list[asyncio.Task[None]] = []

    def start(self) -> None:
        """Watch every process from now on (each is running: the stack has started it)."""
        for watch in self._watches:
            watch.started_at = self._clock()
            self._tasks.append(
                asyncio.create_task(self._supervise(watch), name=f"supervise-{watch.process.name}")
            )

    async def stop(self) -> None:
        """No more restarts; returns once every watching task has ended."""
        self._stopping.set()
        await asyncio.gather(*self._tasks)
        self._tasks = []

    def restarts(self, name: str) -> int:
        """How many times the process called `name` was started again."""
        return next(w.history.restarts for w in self._watches if w.process.name == name)

    def status(self) -> list[str]:
        """A short phrase per process that was restarted or is not up, for the status line."""
        now = self._clock()
        return [_describe(w, now) for w in self._watches if w.history.restarts or not _up(w)]

    async def _supervise(self, watch: _Watch) -> None:
        process = watch.process
        while await self._until_exit(process):
            now = self._clock()
            watch.history, restart = self._policy.on_exit(
                watch.history, now - watch.started_at, now
            )
            exit_code = process.exit_code
            _log_exit(process.name, exit_code, now - watch.started_at, restart, self._policy)
            watch.phase, watch.crash_loop = "waiting", restart.crash_loop
            watch.next_start_at = now + restart.backoff_s
            if await self._stopped_within(restart.backoff_s):
                return
            watch.phase = "starting"
            try:
                await process.start()
            except Exception as error:  # a failed start is one more exit, with its backoff
                log.warning("service_restart_failed", name=process.name, error=repr(error))
            else:
                log.info(
                    "service_restarted",
                    name=process.name,
                    exit=exit_code,
                    restarts=restart.restarts,
                    backoff_s=round(restart.backoff_s, 1),
                )
            watch.phase, watch.started_at = "up", self._clock()

    async def _until_exit(self, process: Supervised) -> bool:
        """Until the process has exited (True) or the supervisor is told to stop (False)."""
        while process.alive:
            if await self._stopped_within(self._poll_s):
                return False
        return not self._stopping.is_set()

    async def _stopped_within(self, seconds: float) -> bool:
        """Wait `seconds`, or less if `stop()` comes; whether it came."""
        with contextlib.suppress(TimeoutError):
            await asyncio.wait_for(self._stopping.wait(), seconds)
        return self._stopping.is_set()


def _log_exit(
    name: str, exit_code: int | None, uptime_s: float, restart: Restart, policy: RestartPolicy
) -> None:
    if restart.crash_loop:
        # Loud on every exit while it lasts; the process is still started again, at the cap.
        log.error(
            "service_crash_looping",
            name=name,
            exit=exit_code,
            exits=restart.recent_exits,
            window_s=round(policy.loop_window_s),
            backoff_s=round(restart.backoff_s, 1),
        )
        return
    log.warning(
        "service_exited",
        name=name,
        exit=exit_code,
        uptime_s=round(uptime_s, 1),
        backoff_s=round(restart.backoff_s, 1),
    )


def _up(watch: _Watch) -> bool:
    return watch.phase == "up" and watch.process.alive


def _describe(watch: _Watch, now: float) -> str:
    """`provider-1 up (restarts 1)`, `kafka down (restarts 2, next in 4s)`, and the like."""
    name, restarts = watch.process.name, watch.history.restarts
    loop = ", crash-looping" if watch.crash_loop else ""
    if watch.phase == "waiting":
        state = "CRASH-LOOP" if watch.crash_loop else "down"
        return f"{name} {state} (restarts {restarts}, next in {watch.next_start_at - now:.0f}s)"
    if watch.phase == "starting":
        return f"{name} starting (restarts {restarts}{loop})"
    state = "up" if watch.process.alive else "down"
    return f"{name} {state} (restarts {restarts}{loop})"


def terminate(process: subprocess.Popen[bytes], timeout_s: float) -> None:
    """SIGTERM, then SIGKILL after `timeout_s`; blocking (call it from a thread)."""
    if process.poll() is None:
        process.send_signal(signal.SIGTERM)
        try:
            process.wait(timeout_s)
        except subprocess.TimeoutExpired:
            process.kill()
            process.wait(10)


def stop_leftovers(run_dir: Path) -> int:
    """SIGTERM every service a pid file names that is still ours; returns how many."""
    stopped = 0
    for pid_file in run_dir.glob("*.pid"):
        with contextlib.suppress(ValueError, psutil.Error):
            process = psutil.Process(int(pid_file.read_text()))
            if "-m" in process.cmdline():
                process.terminate()
                process.wait(20)
                stopped += 1
        pid_file.unlink(missing_ok=True)
    return stopped
