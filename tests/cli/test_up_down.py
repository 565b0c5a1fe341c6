"""`ethgw up` on one stack for the whole module: it starts a killed provider again, and
`ethgw down` from another shell ends it, instead of leaving it waiting for a cluster manager
whose Kafka is gone."""

from __future__ import annotations

import asyncio
import ipaddress
import os
import signal
import socket
import subprocess
import sys
import time
from collections.abc import AsyncIterator
from dataclasses import dataclass
from pathlib import Path

import httpx
import psutil
import pytest

from gateway.keys import read_admin_key
from loadtests.systems import free_ports, wait_http
from service_kit.paths import REPO_ROOT

# The stack's start (Kafka, one node, the services) takes 30-60 s on 2 cores; `up`'s own
# stop after `down` is bounded by the manager's 15 s.
START_TIMEOUT_S = 300.0
EXIT_TIMEOUT_S = 60.0
# A killed provider: 1 s of backoff, its start, then the consumer group's rebalance.
BACK_TIMEOUT_S = 90.0


@dataclass
class Up:
    """A running `ethgw up` and where to find its parts."""

    process: subprocess.Popen[bytes]
    env: dict[str, str]
    log: Path
    state: Path
    gateway: str

    def output(self) -> str:
        return self.log.read_text(errors="replace")

    def pid_of(self, service: str) -> int:
        return int((self.state / "run" / f"{service}.pid").read_text())


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


@pytest.fixture(scope="module")
async def up(tmp_path_factory: pytest.TempPathFactory) -> AsyncIterator[Up]:
    """`ethgw up --nodes 1` on free ports; `ethgw down` afterwards if a test left it running."""
    root = tmp_path_factory.mktemp("up")
    ports = free_ports()
    # Nothing of the test session's own stack (its broker's ETHGW_KAFKA_*) may leak in:
    # this `up` must start, and stop, a broker of its own.
    inherited = {k: v for k, v in os.environ.items()
                 if not k.startswith("ETHGW_") or k == "ETHGW_TOOLS_DIR"}  # fmt: skip
    env = {**inherited, **ports.env(), "ETHGW_STATE_DIR": str(root / "state")}
    # A folder of the state made before, with the test session's wider umask: `up` closes it.
    (root / "state" / "from-before").mkdir(parents=True, mode=0o755)
    log = root / "up.log"
    process = _ethgw("up", "--nodes", "1", "--port-base", str(ports.gateway), env=env, log=log)
    stack = Up(process, env, log, root / "state", f"http://127.0.0.1:{ports.gateway}")
    try:
        await wait_http(f"{stack.gateway}/readyz", START_TIMEOUT_S, process, log)
        # Printed once every service is healthy, just before the supervision starts.
        await _until_in_output(stack, "ethgw stack is up", START_TIMEOUT_S)
        yield stack
    finally:
        # A no-op when a test already stopped it; else what a failed test left running.
        down = _ethgw("down", env=env, log=root / "down.log")
        await asyncio.to_thread(down.wait, EXIT_TIMEOUT_S * 2)
        if process.poll() is None:
            process.kill()
            process.wait(10)


async def _until_in_output(stack: Up, text: str, timeout_s: float) -> None:
    deadline = time.monotonic() + timeout_s
    while text not in stack.output():
        if stack.process.poll() is not None:
            pytest.fail(f"`ethgw up` exited before {text!r}; see {stack.log}")
        if time.monotonic() > deadline:
            pytest.fail(f"no {text!r} in `ethgw up`'s output; see {stack.log}")
        await asyncio.sleep(0.5)


async def _read_completes(stack: Up, key: str, timeout_s: float) -> None:
    """A read through the whole pipeline (gateway, read service, Kafka, the provider) answers
    200 within `timeout_s`; a 202 (the service's own wait ran out) is asked again."""
    deadline = time.monotonic() + timeout_s
    async with httpx.AsyncClient(timeout=40.0, trust_env=False) as client:
        while True:
            response = await client.get(
                f"{stack.gateway}/api/v1/conn/blockNum", headers={"X-API-Key": key}
            )
            if response.status_code == 200:
                assert "block_number" in response.text, response.text
                return
            if time.monotonic() > deadline:
                pytest.fail(f"reads still answer {response.status_code}: {response.text}")


async def test_a_killed_provider_is_started_again_logged_and_shown(up: Up) -> None:
    """kill -9 of the only provider: `up` starts it again, logs and shows the restart, and
    tasks complete again."""
    key = read_admin_key(up.state)
    assert key is not None
    await _read_completes(up, key, 60.0)
    killed = up.pid_of("provider-1")
    os.kill(killed, signal.SIGKILL)
    line = "event=service_restarted name=provider-1 exit=-9 restarts=1 backoff_s=1.0"
    await _until_in_output(up, line, BACK_TIMEOUT_S)
    assert up.pid_of("provider-1") != killed
    await _read_completes(up, key, BACK_TIMEOUT_S)
    await _until_in_output(up, "provider-1 up (restarts 1)", 30.0)


def _stack_processes(up: Up) -> list[psutil.Process]:
    """`up` and every process it started: its descendants, and any process whose command
    line names the stack's state folder (geth, Kafka), in case one left its parent."""
    root = psutil.Process(up.process.pid)
    found = {p.pid: p for p in [root, *root.children(recursive=True)]}
    for process in psutil.process_iter(["cmdline"]):
        if str(up.state) in " ".join(process.info["cmdline"] or []):
            found.setdefault(process.pid, process)
    return list(found.values())


def _listening(processes: list[psutil.Process]) -> list[tuple[str, str, int]]:
    """(process name, address, port) of every TCP listener and every bound UDP socket."""
    sockets = []
    for process in processes:
        try:
            connections = process.net_connections(kind="inet")
            name = process.name()
        except psutil.NoSuchProcess:
            continue
        for connection in connections:
            listening = connection.status == psutil.CONN_LISTEN
            bound_udp = connection.type == socket.SOCK_DGRAM and not connection.raddr
            if listening or bound_udp:
                sockets.append((name, connection.laddr.ip, connection.laddr.port))
    return sockets


def _is_loopback(address: str) -> bool:
    """127.0.0.0/8 or ::1, and Java's way of writing the first (::ffff:127.0.0.1)."""
    ip = ipaddress.ip_address(address)
    mapped = ip.ipv4_mapped if isinstance(ip, ipaddress.IPv6Address) else None
    return (mapped or ip).is_loopback


async def test_nothing_of_the_stack_listens_beyond_loopback(up: Up) -> None:
    """Every socket the stack's processes listen on (gateway, services, providers, manager,
    Geth's RPC, authrpc and P2P, Kafka's listeners) is bound to a loopback address."""
    sockets = _listening(_stack_processes(up))
    ports = {port for _, _, port in sockets}
    gateway_port = int(up.gateway.rsplit(":", 1)[1])
    manager_port = int(up.env["ETHGW_MANAGER_API_PORT"])
    p2p_port = int(up.env["ETHGW_CLUSTER_P2P_PORT_BASE"])
    kafka_port = int(up.env["ETHGW_KAFKA_PORT"])
    assert {gateway_port, manager_port, p2p_port, kafka_port} <= ports, sockets
    beyond = [s for s in sockets if not _is_loopback(s[1])]
    assert beyond == [], beyond


async def test_the_stack_s_manager_takes_the_gateway_s_calls_only(up: Up) -> None:
    """`up`'s gateway reaches its manager (signed with the stack's key); a direct unsigned
    call to the manager is 401."""
    key = read_admin_key(up.state)
    manager = f"http://127.0.0.1:{up.env['ETHGW_MANAGER_API_PORT']}"
    async with httpx.AsyncClient(timeout=30.0, trust_env=False) as client:
        through = await client.get(f"{up.gateway}/admin/cluster", headers={"X-API-Key": key or ""})
        direct = await client.get(f"{manager}/nodes")
    assert through.status_code == 200, through.text
    assert direct.status_code == 401, direct.text
    assert direct.json()["error"]["code"] == "unauthenticated_call"


async def test_everything_up_made_in_the_state_folder_is_its_users_only(up: Up) -> None:
    """Every folder under the state folder (those made before `up` too) is 0700 and every
    file 0600 or narrower: keys, keystores, passwords, tokens, chain and broker data, logs."""
    key = read_admin_key(up.state)
    assert key is not None
    await _read_completes(up, key, 60.0)  # every part has written its files
    opened = [
        f"{oct(path.lstat().st_mode & 0o777)} {path.relative_to(up.state)}"
        for path in [up.state, *up.state.rglob("*")]
        if not path.is_symlink() and path.lstat().st_mode & 0o077
    ]
    assert opened == []
    assert (up.state / "gateway" / "admin.key").stat().st_mode & 0o777 == 0o600


async def test_down_ends_a_running_up(up: Up) -> None:
    """After `ethgw down` (a SIGTERM to it), the `ethgw up` that started the stack stops
    everything and exits 143, as a command ended by SIGTERM, with no traceback."""
    down = _ethgw("down", env=up.env, log=up.log.with_name("down.log"))
    assert await asyncio.to_thread(down.wait, EXIT_TIMEOUT_S) == 0
    try:
        code = await asyncio.to_thread(up.process.wait, EXIT_TIMEOUT_S)
    except subprocess.TimeoutExpired:
        pytest.fail(f"`ethgw up` still runs {EXIT_TIMEOUT_S:.0f}s after `ethgw down`")
    assert code == 143, up.output()[-2000:]
    assert "Traceback" not in up.output().split("logger=ethgw.stack event=stopping")[-1]
    # Its supervisor stops first: nothing `up` stops is taken for a crash.
    assert "service_exited" not in up.output().split("logger=ethgw.stack event=stopping")[-1]
