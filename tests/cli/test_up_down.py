"""`ethgw down` from another shell ends a running `ethgw up` too, instead of leaving it
waiting for a cluster manager whose Kafka is gone."""

from __future__ import annotations

import asyncio
import os
import subprocess
import sys
from pathlib import Path

import pytest

from loadtests.systems import free_ports, wait_http
from service_kit.paths import REPO_ROOT

# The stack's start (Kafka, one node, the services) takes 30-60 s on 2 cores; `up`'s own
# stop after `down` is bounded by the manager's 15 s.
START_TIMEOUT_S = 300.0
EXIT_TIMEOUT_S = 60.0


def _ethgw(*args: str, env: dict[str, str], log: Path) -> subprocess.Popen[bytes]:
    with log.open("ab") as out:
        return subprocess.Popen(
            [sys.executable, "-m", "ethgw.cli", *args],
            env=env,
            cwd=REPO_ROOT,
            stdin=subprocess.DEVNULL,
            stdout=out,
            stderr=subprocess.STDOUT,
            start_new_session=True,
        )


async def test_down_ends_a_running_up(tmp_path: Path) -> None:
    """After `ethgw down`, the `ethgw up` that started the stack exits on its own."""
    ports = free_ports()
    env = {**os.environ, **ports.env(), "ETHGW_STATE_DIR": str(tmp_path / "state")}
    log = tmp_path / "up.log"
    up = _ethgw("up", "--nodes", "1", "--port-base", str(ports.gateway), env=env, log=log)
    try:
        await wait_http(f"http://127.0.0.1:{ports.gateway}/healthz", START_TIMEOUT_S, up, log)
        down = _ethgw("down", env=env, log=tmp_path / "down.log")
        assert await asyncio.to_thread(down.wait, EXIT_TIMEOUT_S) == 0
        try:
            code = await asyncio.to_thread(up.wait, EXIT_TIMEOUT_S)
        except subprocess.TimeoutExpired:
            pytest.fail(f"`ethgw up` still runs {EXIT_TIMEOUT_S:.0f}s after `ethgw down`")
        assert code == 0, log.read_text()[-2000:]
    finally:
        if up.poll() is None:
            up.kill()
            up.wait(10)
