"""The supervisor of `ethgw up`: a dead process is started again, logged and shown; a stopped
supervisor starts nothing."""

from __future__ import annotations

import asyncio
import logging
from collections.abc import Callable

import pytest

from devstack.processes import Supervisor
from devstack.restart_policy import RestartPolicy
from service_kit.logs import bound_fields

FAST = RestartPolicy(backoff_s=0.1, backoff_max_s=0.2, reset_after_s=60.0, loop_exits=3)


class FakeProcess:
    """Stands in for a service: `crash()` ends it with SIGKILL's status; `start()` revives it."""

    def __init__(self, name: str, *, fail_starts: int = 0) -> None:
        self.name = name
        self.alive = True
        self.exit_code: int | None = None
        self.starts = 0
        self._fail_starts = fail_starts

    def crash(self) -> None:
        self.alive, self.exit_code = False, -9

    async def start(self) -> None:
        self.starts += 1
        if self.starts <= self._fail_starts:
            raise RuntimeError("port in use")
        self.alive, self.exit_code = True, None


async def until(condition: Callable[[], bool], timeout_s: float = 5.0) -> None:
    """Until `condition()` holds; fails the test after `timeout_s`."""
    async with asyncio.timeout(timeout_s):
        while True:
            if condition():
                return
            await asyncio.sleep(0.01)


async def test_a_killed_process_is_started_again() -> None:
    """A process that died is started again after the backoff, and counted."""
    process = FakeProcess("provider-1")
    supervisor = Supervisor([process], FAST, poll_s=0.01)
    supervisor.start()
    process.crash()
    await until(lambda: process.alive)
    await supervisor.stop()
    assert (process.starts, supervisor.restarts("provider-1")) == (1, 1)


async def test_each_restart_is_one_structured_log_line(caplog: pytest.LogCaptureFixture) -> None:
    """The restart is logged with the name, the exit status, the count and the backoff."""
    caplog.set_level(logging.INFO, "ethgw.stack")
    process = FakeProcess("provider-1")
    supervisor = Supervisor([process], FAST, poll_s=0.01)
    supervisor.start()
    process.crash()
    await until(lambda: process.alive)
    await supervisor.stop()
    restarted = [bound_fields(r) for r in caplog.records]
    restarted = [fields for fields in restarted if fields["event"] == "service_restarted"]
    expected = {"name": "provider-1", "exit": -9, "restarts": 1, "backoff_s": 0.1}
    assert restarted == [{"event": "service_restarted", **expected}]


async def test_the_status_shows_restart_counts_and_leaves_out_quiet_processes() -> None:
    """Only a restarted or dead process is on the status line, with its restart count."""
    crashed, quiet = FakeProcess("provider-1"), FakeProcess("gateway")
    supervisor = Supervisor([crashed, quiet], FAST, poll_s=0.01)
    supervisor.start()
    crashed.crash()
    await until(lambda: crashed.alive)
    await supervisor.stop()
    assert supervisor.status() == ["provider-1 up (restarts 1)"]


async def test_a_process_waiting_for_its_restart_shows_when() -> None:
    """While the backoff runs, the status says the process is down and when it starts."""
    process = FakeProcess("kafka")
    slow = RestartPolicy(backoff_s=30.0, backoff_max_s=30.0)
    supervisor = Supervisor([process], slow, poll_s=0.01)
    supervisor.start()
    process.crash()
    await until(lambda: "next in" in " ".join(supervisor.status()))
    status = supervisor.status()
    await supervisor.stop()
    assert status == ["kafka down (restarts 1, next in 30s)"]


async def test_a_stopped_supervisor_starts_nothing() -> None:
    """After stop(), a process that dies (being stopped by the stack) stays dead."""
    process = FakeProcess("provider-1")
    supervisor = Supervisor([process], FAST, poll_s=0.01)
    supervisor.start()
    await supervisor.stop()
    process.crash()
    await asyncio.sleep(0.2)
    assert (process.alive, process.starts) == (False, 0)


async def test_stop_during_the_backoff_cancels_the_restart() -> None:
    """A process being waited for when the stack stops is not started."""
    process = FakeProcess("provider-1")
    supervisor = Supervisor([process], RestartPolicy(backoff_s=30.0), poll_s=0.01)
    supervisor.start()
    process.crash()
    await until(lambda: "next in" in " ".join(supervisor.status()))
    await asyncio.wait_for(supervisor.stop(), 1.0)
    assert process.starts == 0


async def test_a_failed_start_is_retried_with_a_longer_backoff() -> None:
    """A start that raises counts as one more exit: tried again, after a doubled wait."""
    process = FakeProcess("kafka", fail_starts=1)
    supervisor = Supervisor([process], FAST, poll_s=0.01)
    supervisor.start()
    process.crash()
    await until(lambda: process.alive)
    await supervisor.stop()
    assert (process.starts, supervisor.restarts("kafka")) == (2, 2)


async def test_a_crash_loop_is_logged_as_an_error_and_still_restarted(
    caplog: pytest.LogCaptureFixture,
) -> None:
    """loop_exits exits within the window: an ERROR line, and the process is started again."""
    caplog.set_level(logging.INFO, "ethgw.stack")
    process = FakeProcess("kafka")
    supervisor = Supervisor([process], FAST, poll_s=0.01)
    supervisor.start()
    for restarts in range(1, FAST.loop_exits + 1):
        process.crash()
        await until(lambda: process.alive and supervisor.restarts("kafka") == restarts)  # noqa: B023
    await supervisor.stop()
    errors = [bound_fields(r) for r in caplog.records if r.levelno == logging.ERROR]
    expected = {"name": "kafka", "exit": -9, "exits": 3, "window_s": 300, "backoff_s": 0.2}
    assert errors == [{"event": "service_crash_looping", **expected}]
    assert supervisor.status() == ["kafka up (restarts 3, crash-looping)"]
