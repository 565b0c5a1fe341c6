"""A user's mistake ends `ethgw` with one clear line on stderr and a non-zero exit code,
never a traceback, and before anything is started."""

from __future__ import annotations

import os
import socket
import subprocess
from collections.abc import Iterator
from concurrent.futures import ThreadPoolExecutor
from pathlib import Path

import pytest

from gateway.keys import create_key, keys_path
from tests.cli.commands import clean_env, ethgw

# (arguments, settings, what the last line of stderr says)
MISTAKES = {
    "no nodes": (["up", "--nodes", "0"], {}, "argument --nodes: '0' should be greater than"),
    "too many nodes": (["cluster", "up", "--nodes", "17"], {}, "argument --nodes: '17'"),
    "unknown strategy": (["up", "--strategy", "fastest"], {}, "invalid choice: 'fastest'"),
    "no readers": (["up", "--readers", "0"], {}, "argument --readers: 0 is out of range"),
    "port base too high": (["up", "--port-base", "65500"], {}, "argument --port-base: 65500"),
    "word for a count": (["up", "--providers", "two"], {}, "'two' is not an integer"),
    "unknown log level": (["--log-level", "loud", "down"], {}, "argument --log-level"),
    "unknown option": (["down", "--force"], {}, "unrecognized arguments: --force"),
    "bad setting": (
        ["cluster", "status"],
        {"ETHGW_CLUSTER_NODES": "many"},
        "ethgw: setting ETHGW_CLUSTER_NODES='many': should be a valid integer",
    ),
    "port setting out of range": (
        ["kafka", "up"],
        {"ETHGW_KAFKA_PORT": "70000"},
        "ethgw: setting ETHGW_KAFKA_PORT='70000': should be less than or equal to 65535",
    ),
    "bad gateway port setting": (
        ["up"],
        {"ETHGW_GATEWAY_PORT": "http"},
        "ethgw: setting ETHGW_GATEWAY_PORT='http'",
    ),
    "empty key name": (["keys", "create", "--name", ""], {}, "ethgw: --name: a key's name"),
    "unknown key": (["keys", "revoke", "nobody"], {}, "ethgw: no key is named 'nobody'"),
    "unknown node": (["cluster", "restart", "node-9"], {}, "ethgw: no node named 'node-9'"),
}


def _assert_one_clear_line(done: subprocess.CompletedProcess[str], expected: str) -> None:
    stderr = done.stderr
    assert done.returncode != 0, stderr
    assert "Traceback" not in stderr, stderr
    assert expected in stderr.strip().splitlines()[-1], stderr


@pytest.fixture(scope="module")
def mistakes_made(
    tmp_path_factory: pytest.TempPathFactory,
) -> dict[str, subprocess.CompletedProcess[str]]:
    """Each mistake of MISTAKES made once, in a state folder of its own. Side by side, one per
    core: an `ethgw` spends its seconds importing, on one core, and the mistakes share nothing."""

    def make(name: str) -> subprocess.CompletedProcess[str]:
        args, settings, _ = MISTAKES[name]
        return ethgw(*args, env=clean_env(tmp_path_factory.mktemp("mistake"), **settings))

    with ThreadPoolExecutor(max_workers=os.cpu_count() or 2) as pool:
        return dict(zip(MISTAKES, pool.map(make, MISTAKES), strict=True))


@pytest.mark.parametrize("mistake", MISTAKES)
def test_a_mistake_ends_with_one_line_and_a_non_zero_code(
    mistake: str, mistakes_made: dict[str, subprocess.CompletedProcess[str]]
) -> None:
    """Each mistake: exit code 1 or 2, no traceback, stderr's last line says what is wrong."""
    _assert_one_clear_line(mistakes_made[mistake], MISTAKES[mistake][2])


def test_a_mistake_starts_nothing(tmp_path: Path) -> None:
    """`up --nodes 0` writes nothing in the state folder: no chain, no broker, no pid file."""
    done = ethgw("up", "--nodes", "0", env=clean_env(tmp_path / "state"))
    assert done.returncode == 2
    assert not (tmp_path / "state").exists()


def test_an_unreadable_keys_file_is_named(tmp_path: Path) -> None:
    """`keys list` on a keys file that is not one names the file, without a traceback."""
    keys_path(tmp_path).parent.mkdir(parents=True)
    keys_path(tmp_path).write_text("{not json")
    done = ethgw("keys", "list", env=clean_env(tmp_path))
    _assert_one_clear_line(done, f"ethgw: {keys_path(tmp_path)}: not a keys file")


def test_a_name_several_keys_share_is_not_revoked_without_all(tmp_path: Path) -> None:
    """`keys revoke app` with two keys named app revokes neither and names both ids."""
    create_key(tmp_path, "app", "user")
    create_key(tmp_path, "app", "user")
    before = keys_path(tmp_path).read_text()
    done = ethgw("keys", "revoke", "app", env=clean_env(tmp_path))
    _assert_one_clear_line(done, "2 keys are named 'app'")
    assert keys_path(tmp_path).read_text() == before


@pytest.fixture
def held_port() -> Iterator[int]:
    """A port something else listens on for the test."""
    with socket.socket() as holder:
        holder.bind(("127.0.0.1", 0))
        holder.listen()
        yield holder.getsockname()[1]


def test_a_taken_broker_port_is_named_with_its_setting(tmp_path: Path, held_port: int) -> None:
    """`kafka up` on a taken port names the port and ETHGW_KAFKA_PORT."""
    settings = {"ETHGW_KAFKA_PORT": str(held_port)}
    done = ethgw("kafka", "up", env=clean_env(tmp_path, **settings))
    _assert_one_clear_line(done, f"port {held_port} (ETHGW_KAFKA_PORT) is already in use")


def test_a_taken_gateway_port_stops_up_before_it_starts_anything(
    tmp_path: Path, held_port: int
) -> None:
    """`up --port-base P` with P taken names the port and --port-base; no broker started."""
    done = ethgw("up", "--port-base", str(held_port), env=clean_env(tmp_path))
    _assert_one_clear_line(done, f"port {held_port} (gateway, from --port-base {held_port})")
    assert not (tmp_path / "kafka").exists()
