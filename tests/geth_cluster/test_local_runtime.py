"""The local process runtime's bookkeeping: which process is a node's, and how it ended.

The "geth" here is a shell script, so each test controls what the process does and what
its command line shows; the real geth's life cycle is tested in test_cluster.py.
"""

from __future__ import annotations

import asyncio
import os
import signal
import subprocess
from collections.abc import AsyncIterator
from pathlib import Path

import pytest_asyncio

from geth_cluster.layout import NodeSpec
from geth_cluster.runtimes.local import PID_NAME, LocalProcessRuntime

# `exec` replaces the shell: the node's process then shows only "sleep 60", not the
# --datadir argument the runtime's own check looks for in a command line.
SLEEPER = "#!/bin/sh\necho starting\nexec sleep 60\n"
FAILER = "#!/bin/sh\necho 'Fatal: bad flag'\nexit 3\n"


def _spec(tmp_path: Path) -> NodeSpec:
    return NodeSpec("node-1", 1, False, tmp_path / "node-1", 30303, 8546, 8552)


def _script(tmp_path: Path, text: str) -> Path:
    path = tmp_path / "geth"
    path.write_text(text)
    path.chmod(0o755)
    return path


@pytest_asyncio.fixture
async def sleeper(tmp_path: Path) -> AsyncIterator[tuple[LocalProcessRuntime, NodeSpec]]:
    runtime = LocalProcessRuntime(_script(tmp_path, SLEEPER))
    spec = _spec(tmp_path)
    await runtime.start(spec, ["--datadir", str(spec.datadir)])
    try:
        yield runtime, spec
    finally:
        await runtime.stop(spec, timeout_s=5.0)


async def test_a_started_child_is_running_whatever_its_command_line_shows(
    sleeper: tuple[LocalProcessRuntime, NodeSpec],
) -> None:
    """The runtime's own live child counts as running even when /proc shows no --datadir."""
    runtime, spec = sleeper
    assert await runtime.is_running(spec)
    assert runtime.pid(spec) == int((spec.datadir / PID_NAME).read_text())


async def test_a_pid_file_of_another_command_counts_as_no_node(tmp_path: Path) -> None:
    """A pid file naming a process that is not this node's geth means the node is down."""
    runtime = LocalProcessRuntime(_script(tmp_path, SLEEPER))
    spec = _spec(tmp_path)
    spec.datadir.mkdir(parents=True)
    (spec.datadir / PID_NAME).write_text(str(os.getpid()))
    assert not await runtime.is_running(spec)


async def test_a_stopped_node_is_not_running(
    sleeper: tuple[LocalProcessRuntime, NodeSpec],
) -> None:
    """After stop the process is gone and the pid file removed."""
    runtime, spec = sleeper
    await runtime.stop(spec, timeout_s=5.0)
    assert not await runtime.is_running(spec)
    assert not (spec.datadir / PID_NAME).exists()


async def test_the_log_tail_says_which_signal_ended_a_child(
    sleeper: tuple[LocalProcessRuntime, NodeSpec],
) -> None:
    """A node killed by someone else's SIGTERM says so after its last log lines."""
    runtime, spec = sleeper
    await _until_logged(runtime, spec, "starting")  # a kill before it would log nothing
    pid = runtime.pid(spec)
    assert pid is not None
    os.kill(pid, signal.SIGTERM)
    await _until_stopped(runtime, spec)
    assert runtime.log_tail(spec).endswith("starting\n[geth was killed by SIGTERM]\n")


async def test_the_log_tail_gives_the_exit_status_of_a_failed_start(tmp_path: Path) -> None:
    """A geth that exits on its own shows its output and then its exit status."""
    runtime = LocalProcessRuntime(_script(tmp_path, FAILER))
    spec = _spec(tmp_path)
    await runtime.start(spec, [])
    await _until_stopped(runtime, spec)
    assert runtime.log_tail(spec) == "Fatal: bad flag\n[geth exited with status 3]\n"


async def _until_logged(runtime: LocalProcessRuntime, spec: NodeSpec, text: str) -> None:
    for _ in range(100):
        if text in runtime.log_tail(spec):
            return
        await asyncio.sleep(0.05)
    raise subprocess.TimeoutExpired("geth", 5.0)


async def _until_stopped(runtime: LocalProcessRuntime, spec: NodeSpec) -> None:
    for _ in range(100):
        if not await runtime.is_running(spec):
            return
        await asyncio.sleep(0.05)
    raise subprocess.TimeoutExpired("geth", 5.0)
