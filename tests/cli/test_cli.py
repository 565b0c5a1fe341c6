"""The `ethgw` command's own behaviour (the stack itself is tested elsewhere)."""

from __future__ import annotations

import argparse
import json
import subprocess
import sys
import tomllib
from collections.abc import Iterator
from pathlib import Path

import pytest

from balancer.sim.__main__ import _parser as sim_parser
from ethgw.cli import build_parser, format_status, main
from gateway.keys import KeyRing, create_key, hash_key, keys_path
from geth_cluster.cluster import NodeStatus
from loadtests.bench import build_parser as bench_parser
from service_kit.paths import REPO_ROOT
from service_kit.ports import free_port


def test_status_table_shows_every_column() -> None:
    """The status table has node, pid, rpc, block, peers, cpu and mem, '-' when unknown;
    the sealer's rpc is its IPC socket."""
    table = format_status(
        [
            NodeStatus("sealer", 122, None, 40, 2, 0.01, 0.1),
            NodeStatus("node-1", 123, 8546, 40, 2, 0.1234, 0.5),
            NodeStatus("node-2", None, 8547, None, None, None, None),
        ]
    )
    lines = table.splitlines()
    assert lines[0].split() == ["node", "pid", "rpc", "block", "peers", "cpu", "mem"]
    assert lines[1].split() == ["sealer", "122", "ipc", "40", "2", "0.010", "0.100"]
    assert lines[2].split() == ["node-1", "123", "8546", "40", "2", "0.123", "0.500"]
    assert lines[3].split() == ["node-2", "-", "8547", "-", "-", "-", "-"]


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


def _options(parser: argparse.ArgumentParser, path: str) -> Iterator[tuple[str, str | None]]:
    """(`command option`, its help) for every argument and subcommand under `parser`."""
    for action in parser._actions:
        if isinstance(action, argparse._SubParsersAction):
            for choice in action._choices_actions:
                yield f"{path} {choice.dest}", choice.help
            for name, sub in action.choices.items():
                yield from _options(sub, f"{path} {name}")
        else:
            yield f"{path} {'/'.join(action.option_strings) or action.dest}", action.help


def test_every_option_of_every_command_has_help() -> None:
    """Each option, argument and subcommand of `ethgw` (with sim's and bench's) has help."""
    parsers = {"ethgw": build_parser(), "ethgw sim": sim_parser(), "ethgw bench": bench_parser()}
    found = [item for path, parser in parsers.items() for item in _options(parser, path)]
    assert len(found) > 60  # the walk reached the subcommands
    assert not [name for name, text in found if not text or not text.strip()]


def test_the_walk_finds_an_option_without_help() -> None:
    """The walk above reports an option added without help (it can fail)."""
    parser = build_parser()
    parser.add_argument("--undocumented")
    assert ("ethgw --undocumented", None) in list(_options(parser, "ethgw"))


def test_version_prints_the_distributions_version(capsys: pytest.CaptureFixture[str]) -> None:
    """`ethgw --version` prints `ethgw X.Y.Z`, the version of pyproject.toml, and exits 0."""
    declared = tomllib.loads((REPO_ROOT / "pyproject.toml").read_text())["project"]["version"]
    with pytest.raises(SystemExit) as exited:
        main(["--version"])
    assert exited.value.code == 0
    assert capsys.readouterr().out == f"ethgw {declared}\n"


def test_keys_list_shows_ids_names_and_roles_never_hashes(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch, capsys: pytest.CaptureFixture[str]
) -> None:
    """`ethgw keys list` has a row per key with its id, name and role, and no hash."""
    monkeypatch.setenv("ETHGW_STATE_DIR", str(tmp_path))
    user = create_key(tmp_path, "app", "user")
    admin = create_key(tmp_path, "ops", "admin")
    assert main(["keys", "list"]) == 0
    lines = capsys.readouterr().out.splitlines()
    assert lines[0].split()[:3] == ["key_id", "name", "role"]
    assert [line.split()[:3] for line in lines[1:]] == [
        [hash_key(user)[:12], "app", "user"],
        [hash_key(admin)[:12], "ops", "admin"],
    ]
    assert hash_key(user) not in "\n".join(lines)


def test_keys_list_json_has_no_hash(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch, capsys: pytest.CaptureFixture[str]
) -> None:
    """`ethgw keys list --json` lists id, name, role and creation time of each key."""
    monkeypatch.setenv("ETHGW_STATE_DIR", str(tmp_path))
    create_key(tmp_path, "app", "user")
    assert main(["keys", "list", "--json"]) == 0
    (listed,) = json.loads(capsys.readouterr().out)
    assert sorted(listed) == ["created_at", "key_id", "name", "role"]


def test_keys_revoke_all_removes_every_key_of_the_name(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch, capsys: pytest.CaptureFixture[str]
) -> None:
    """`ethgw keys revoke app --all` revokes both keys named app and says so, one line each."""
    monkeypatch.setenv("ETHGW_STATE_DIR", str(tmp_path))
    create_key(tmp_path, "app", "user")
    create_key(tmp_path, "app", "user")
    kept = create_key(tmp_path, "ops", "admin")
    assert main(["keys", "revoke", "app", "--all"]) == 0
    assert capsys.readouterr().out.count("revoked ") == 2
    ring = KeyRing(keys_path(tmp_path))
    ring.reload_if_changed()
    assert len(ring) == 1
    assert ring.verify(kept) is not None


def test_demo_overload_without_a_stack_exits_1_and_says_to_start_one(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch, capsys: pytest.CaptureFixture[str]
) -> None:
    """`ethgw demo overload` with no stack answering stops at once, naming what to run."""
    monkeypatch.setenv("ETHGW_STATE_DIR", str(tmp_path))
    monkeypatch.setenv("ETHGW_MANAGER_API_PORT", str(free_port()))
    assert main(["demo", "overload", "--port-base", str(free_port())]) == 1
    assert "start the stack with `ethgw up`" in capsys.readouterr().err


# What a command's parser must not load: the stack's start-up, the gateway's app, web3.
HEAVY_MODULES = ("devstack.stack", "devstack.kafka_broker", "gateway.app", "web3")


def test_parsing_a_command_loads_none_of_the_stack() -> None:
    """`ethgw` answers a mistake or --help without importing the stack, the app or web3
    (each took seconds of every command's start); a command imports them when it runs."""
    probe = (
        "import sys\n"
        "from ethgw.cli import build_parser\n"
        "build_parser().parse_known_args(['up', '--nodes', '2'])\n"
        f"print([m for m in {HEAVY_MODULES!r} if m in sys.modules])\n"
    )
    loaded = subprocess.run(
        [sys.executable, "-c", probe], cwd=REPO_ROOT, capture_output=True, text=True, check=True
    )
    assert loaded.stdout.strip() == "[]", loaded.stdout + loaded.stderr
