"""The peering of the private network: every node with every other, and a first sync as
soon as a node has met them all."""

from __future__ import annotations

import tomllib
from typing import Any

import pytest

from geth_cluster.cluster import GethCluster
from geth_cluster.runtimes.local import LocalProcessRuntime
from geth_cluster.toolchain import geth_binary
from tests.cluster_fixtures import cluster_settings


@pytest.fixture(scope="module")
def written_cluster(tmp_path_factory: pytest.TempPathFactory) -> GethCluster:
    """A sealer and three service nodes' files, written and never started."""
    settings = cluster_settings(tmp_path_factory.mktemp("peering"), nodes=3)
    cluster = GethCluster(settings, LocalProcessRuntime(geth_binary()))
    cluster.write_node_files()
    return cluster


def _p2p(cluster: GethCluster, name: str) -> dict[str, Any]:
    """The [Node.P2P] table of the node's config.toml."""
    config = tomllib.loads((cluster.spec(name).datadir / "config.toml").read_text())
    return dict(config["Node"]["P2P"])


def _named_nodes(urls: list[str], cluster: GethCluster) -> set[str]:
    """The nodes whose P2P address the enode URLs name."""
    return {s.name for s in cluster.specs if any(u.endswith(f":{s.p2p_port}") for u in urls)}


@pytest.mark.parametrize("key", ["StaticNodes", "TrustedNodes"])
def test_a_node_peers_with_every_other_node(written_cluster: GethCluster, key: str) -> None:
    """Each node's static and trusted peers are all the other nodes, sealer included."""
    for spec in written_cluster.specs:
        others = {s.name for s in written_cluster.specs} - {spec.name}
        assert _named_nodes(_p2p(written_cluster, spec.name)[key], written_cluster) == others


def test_a_node_has_as_many_peer_slots_as_peers(written_cluster: GethCluster) -> None:
    """MaxPeers is the number of other nodes, so geth's first sync waits for no fifth peer."""
    assert _p2p(written_cluster, "node-1")["MaxPeers"] == 3


def test_a_node_may_dial_all_its_peers(written_cluster: GethCluster) -> None:
    """DialRatio 1: every peer slot may be dialled (geth's default dials a third of them)."""
    assert _p2p(written_cluster, "sealer")["DialRatio"] == 1
