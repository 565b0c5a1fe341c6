"""Clear messages when a port is taken or a tool is missing."""

from __future__ import annotations

import os
import socket
import subprocess
from pathlib import Path

import pytest

from geth_cluster.cluster import GethCluster
from geth_cluster.errors import ToolMissingError
from geth_cluster.layout import node_specs
from geth_cluster.runtimes.local import LocalProcessRuntime
from geth_cluster.toolchain import geth_binary
from service_kit.paths import REPO_ROOT
from service_kit.ports import PortInUseError
from tests.cluster_fixtures import cluster_settings


async def test_taken_port_stops_the_start_naming_port_and_setting(tmp_path: Path) -> None:
    """A port already in use stops `up` with its number and the setting that chose it."""
    settings = cluster_settings(tmp_path, nodes=1)
    rpc_port = node_specs(settings)[1].rpc_port
    cluster = GethCluster(settings, LocalProcessRuntime(geth_binary()))
    with socket.socket() as squatter:
        squatter.bind(("127.0.0.1", rpc_port))
        squatter.listen()
        try:
            with pytest.raises(PortInUseError) as caught:
                await cluster.up()
        finally:
            await cluster.down()
            await cluster.aclose()
    assert f"port {rpc_port}" in str(caught.value)
    assert "ETHGW_CLUSTER_RPC_PORT_BASE + 1" in str(caught.value)


async def test_missing_geth_binary_says_how_to_get_it(tmp_path: Path) -> None:
    """Starting a node without geth names the path and `make bootstrap`."""
    settings = cluster_settings(tmp_path, nodes=1)
    runtime = LocalProcessRuntime(tmp_path / "no-such-geth")
    with pytest.raises(ToolMissingError, match="make bootstrap"):
        await runtime.start(node_specs(settings)[0], [])


def test_bootstrap_names_a_missing_tool(tmp_path: Path) -> None:
    """The bootstrap stops before doing anything when a tool is missing, naming it."""
    bin_dir = tmp_path / "bin"
    bin_dir.mkdir()
    for tool in ("bash", "python3", "gcc", "java", "mvn", "node", "npm"):
        found = subprocess.run(["which", tool], capture_output=True, text=True, check=True)
        os.symlink(found.stdout.strip(), bin_dir / tool)
    result = subprocess.run(
        [str(bin_dir / "bash"), str(REPO_ROOT / "scripts" / "bootstrap.sh")],
        env={"PATH": str(bin_dir), "HOME": str(tmp_path)},
        capture_output=True,
        text=True,
        timeout=60,
    )
    assert result.returncode == 1
    assert "required tool go is missing" in result.stderr
    assert "go.dev" in result.stderr
    assert not (tmp_path / ".cache").exists()
