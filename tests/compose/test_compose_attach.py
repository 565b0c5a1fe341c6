"""The cluster manager of compose.yaml can find the node containers it drives."""

from __future__ import annotations

import os
from pathlib import Path

import pytest

from common.settings import ClusterSettings
from geth_cluster.docker_runtime import DockerRuntime
from geth_cluster.layout import node_specs
from tests.compose.compose_file import environment, geth_services, services


def test_the_manager_attaches_to_each_node_container_by_its_name(
    monkeypatch: pytest.MonkeyPatch, tmp_path: Path
) -> None:
    """The manager's runtime is docker in attach mode, and the container name it derives for
    each node is the container_name compose gives that node's service."""
    for name in [n for n in os.environ if n.startswith("ETHGW_")]:
        monkeypatch.delenv(name)
    for name, value in environment(services()["manager"]).items():
        monkeypatch.setenv(name, value)
    settings = ClusterSettings()
    runtime = DockerRuntime(settings, tmp_path / "geth")
    assert settings.runtime == "docker"
    assert runtime.attached
    nodes = geth_services()
    for spec in node_specs(settings):
        assert nodes[spec.name]["container_name"] == runtime.container_name(spec)
