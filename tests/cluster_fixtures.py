"""Session fixture: a real Geth private network (sealer + 2 service nodes) on free ports."""

from __future__ import annotations

import random
import socket
from collections.abc import AsyncIterator
from pathlib import Path

import pytest
import pytest_asyncio

from ethgw_wire.settings import ClusterSettings
from geth_cluster.cluster import GethCluster
from geth_cluster.runtimes.local import LocalProcessRuntime
from geth_cluster.toolchain import geth_binary


def _free_block(size: int, start: int = 21000, stop: int = 29000) -> int:
    """A base port from which `size` consecutive ports are all free (tried in a
    random order, so concurrent test sessions do not pick the same block)."""
    bases = list(range(start, stop, size))
    for base in random.sample(bases, len(bases)):
        if all(_is_free(base + i) for i in range(size)):
            return base
    raise RuntimeError("no free block of ports for the test cluster")


def _is_free(port: int) -> bool:
    with socket.socket() as probe:
        probe.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
        try:
            probe.bind(("127.0.0.1", port))
        except OSError:
            return False
        return True


def cluster_settings(state_dir: Path, nodes: int = 2) -> ClusterSettings:
    """Settings for a test cluster whose ports collide with nothing running."""
    base = _free_block(3 * (nodes + 1))
    return ClusterSettings(
        state_dir=state_dir,
        nodes=nodes,
        p2p_port_base=base,
        rpc_port_base=base + nodes + 1,
        authrpc_port_base=base + 2 * (nodes + 1),
    )


@pytest_asyncio.fixture(scope="session")
async def geth_cluster(tmp_path_factory: pytest.TempPathFactory) -> AsyncIterator[GethCluster]:
    """A running sealer and two service nodes, stopped after the session.

    Tests stop and start its nodes themselves, so a manager made on it does not heal them
    unless the test asks (tests/geth_cluster/test_healer.py): otherwise a manager of an
    earlier test, still running, restarts a node a later test has stopped on purpose."""
    settings = cluster_settings(tmp_path_factory.mktemp("cluster"))
    cluster = GethCluster(settings, LocalProcessRuntime(geth_binary()))
    with pytest.MonkeyPatch.context() as env:
        env.setenv("ETHGW_MANAGER_HEAL", "false")
        try:
            await cluster.up()
            yield cluster
        finally:
            await cluster.down()
            await cluster.aclose()
