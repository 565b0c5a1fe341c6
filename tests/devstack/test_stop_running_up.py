"""`ethgw down` asks the running `ethgw up` to stop first, and only the one its file names."""

from __future__ import annotations

import contextlib
import subprocess
import sys
import time
from collections.abc import Iterator
from pathlib import Path

import psutil
import pytest

from devstack.stack import stop_running_up

# A parent that starts a sleeper, says its pid and never reaps it, as a shell might not yet.
PARENT = """
import subprocess, sys, time
child = subprocess.Popen([sys.executable, "-c", "import time; time.sleep(60)"])
print(child.pid, flush=True)
time.sleep(60)
"""


@pytest.fixture
def sleeper() -> Iterator[psutil.Process]:
    """A process standing in for `ethgw up`, not our child; SIGTERM ends it."""
    parent = subprocess.Popen([sys.executable, "-c", PARENT], stdout=subprocess.PIPE)
    assert parent.stdout is not None
    child = psutil.Process(int(parent.stdout.readline()))
    yield child
    with contextlib.suppress(psutil.Error):
        child.kill()
    parent.kill()
    parent.communicate(timeout=10)


def _announce(path: Path, pid: int, created: float) -> None:
    path.write_text(f"{pid} {created}\n")


def test_the_named_up_gets_sigterm_and_is_waited_for(
    tmp_path: Path, sleeper: psutil.Process
) -> None:
    """The process the file names is sent SIGTERM; the call returns once it ended, even
    while it is a zombie its parent has not reaped yet."""
    path = tmp_path / "up.pid"
    _announce(path, sleeper.pid, sleeper.create_time())
    started = time.monotonic()
    assert stop_running_up(path, timeout_s=10.0)
    assert time.monotonic() - started < 5.0
    assert sleeper.status() == psutil.STATUS_ZOMBIE


def test_a_recycled_pid_is_left_alone(tmp_path: Path, sleeper: psutil.Process) -> None:
    """A pid whose start time differs from the file's is another process: not signalled."""
    path = tmp_path / "up.pid"
    _announce(path, sleeper.pid, sleeper.create_time() - 100.0)
    assert not stop_running_up(path, timeout_s=1.0)
    assert sleeper.status() != psutil.STATUS_ZOMBIE


def test_no_file_means_no_up(tmp_path: Path) -> None:
    """Without the file there is nothing to stop."""
    assert not stop_running_up(tmp_path / "up.pid", timeout_s=1.0)
