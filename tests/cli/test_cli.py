"""The `ethgw` command's own behaviour (the stack itself is tested elsewhere)."""

from __future__ import annotations

from pathlib import Path

import pytest

from ethgw.cli import build_parser, format_status, main
from gateway.keys import KeyRing, keys_path
from geth_cluster.cluster import NodeStatus
from service_kit.ports import free_port


def test_status_table_shows_every_column() -> None:
    """The status table has node, pid, rpc, block, peers, cpu and mem, '-' when unknown."""
    table = format_status(
        [
            NodeStatus("node-1", 123, 8546, 40, 2, 0.1234, 0.5),
            NodeStatus("node-2", None, 8547, None, None, None, None),
        ]
    )
    lines = table.splitlines()
    assert lines[0].split() == ["node", "pid", "rpc", "block", "peers", "cpu", "mem"]
    assert lines[1].split() == ["node-1", "123", "8546", "40", "2", "0.123", "0.500"]
    assert lines[2].split() == ["node-2", "-", "8547", "-", "-", "-", "-"]


def test_keys_create_prints_a_key_the_gateway_accepts(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch, capsys: pytest.CaptureFixture[str]
) -> None:
    """`ethgw keys create` prints a new key once, and the key file holds only its hash."""
    monkeypatch.setenv("ETHGW_STATE_DIR", str(tmp_path))
    assert main(["keys", "create", "--name", "ops", "--role", "admin"]) == 0
    key = capsys.readouterr().out.strip()
    stored = (tmp_path / "gateway" / "api-keys.json").read_text()
    assert key.startswith("ethgw_")
    assert key not in stored
    ring = KeyRing(keys_path(tmp_path))
    ring.reload_if_changed()
    found = ring.verify(key)
    assert found is not None
    assert found.role == "admin"


def test_up_accepts_every_strategy_and_keeps_lbh_by_default() -> None:
    """`ethgw up --strategy lbh_adaptive` parses; with no --strategy the default stays lbh."""
    parser = build_parser()
    assert parser.parse_args(["up", "--strategy", "lbh_adaptive"]).strategy == "lbh_adaptive"
    assert parser.parse_args(["up"]).strategy == "lbh"


def test_demo_overload_without_a_stack_exits_1_and_says_to_start_one(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch, capsys: pytest.CaptureFixture[str]
) -> None:
    """`ethgw demo overload` with no stack answering stops at once, naming what to run."""
    monkeypatch.setenv("ETHGW_STATE_DIR", str(tmp_path))
    monkeypatch.setenv("ETHGW_MANAGER_API_PORT", str(free_port()))
    assert main(["demo", "overload", "--port-base", str(free_port())]) == 1
    assert "start the stack with `ethgw up`" in capsys.readouterr().err
