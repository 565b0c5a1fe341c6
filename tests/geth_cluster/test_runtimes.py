"""Choosing the node runtime: the setting picks it, the state folder remembers it."""

from __future__ import annotations

from pathlib import Path

import pytest

from ethgw_wire.settings import ClusterSettings
from geth_cluster.runtimes import make_runtime, remember_runtime, remembered_runtime
from geth_cluster.runtimes.docker import DockerRuntime, cluster_id
from geth_cluster.runtimes.local import LocalProcessRuntime


def test_the_runtime_setting_picks_processes_or_containers(tmp_path: Path) -> None:
    """`runtime` process gives LocalProcessRuntime, docker gives DockerRuntime."""
    geth = tmp_path / "geth"
    process = make_runtime(ClusterSettings(state_dir=tmp_path), geth)
    docker = make_runtime(ClusterSettings(state_dir=tmp_path, runtime="docker"), geth)
    assert isinstance(process, LocalProcessRuntime)
    assert isinstance(docker, DockerRuntime)


def test_the_runtime_comes_from_its_environment_variable(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    """ETHGW_CLUSTER_RUNTIME=docker selects the docker runtime."""
    monkeypatch.setenv("ETHGW_CLUSTER_RUNTIME", "docker")
    assert ClusterSettings(state_dir=tmp_path).runtime == "docker"


def test_the_state_folder_remembers_the_runtime_it_was_started_on(tmp_path: Path) -> None:
    """What `up` records is what `status` and `down` later read; nothing recorded reads None."""
    assert remembered_runtime(tmp_path) is None
    remember_runtime(tmp_path, "docker")
    assert remembered_runtime(tmp_path) == "docker"


def test_container_names_differ_between_state_folders(tmp_path: Path) -> None:
    """Two clusters (two test sessions) never share a container name."""
    one, two = tmp_path / "a", tmp_path / "b"
    assert cluster_id(one) != cluster_id(two)
    assert cluster_id(one) == cluster_id(one)
