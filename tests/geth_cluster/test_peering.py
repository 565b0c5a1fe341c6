"""The peering of the private network: a star around the sealer."""

from __future__ import annotations

import pytest

from geth_cluster.cluster import FOLLOWER_MAX_PEERS, GethCluster
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


def _config(cluster: GethCluster, name: str) -> str:
    return (cluster.spec(name).datadir / "config.toml").read_text()


def _port_mentions(config: str, cluster: GethCluster) -> set[str]:
    """The nodes whose P2P address the config names."""
    return {s.name for s in cluster.specs if f'127.0.0.1:{s.p2p_port}"' in config}


def test_a_service_node_peers_with_the_sealer_alone(written_cluster: GethCluster) -> None:
    """A service node's static and trusted peers are the sealer and nothing else."""
    config = _config(written_cluster, "node-2")
    static, trusted = config.split("StaticNodes")[1].split("TrustedNodes")
    assert _port_mentions(static, written_cluster) == {"sealer"}
    assert _port_mentions(trusted, written_cluster) == {"sealer"}


def test_the_sealer_peers_with_every_service_node(written_cluster: GethCluster) -> None:
    """The sealer's static peers are all the service nodes."""
    static = _config(written_cluster, "sealer").split("StaticNodes")[1].split("TrustedNodes")[0]
    assert _port_mentions(static, written_cluster) == {"node-1", "node-2", "node-3"}


def test_a_service_node_has_one_peer_slot_and_the_sealer_the_default(
    written_cluster: GethCluster,
) -> None:
    """Only service nodes are started with --maxpeers 1: geth then syncs with one peer."""
    service_args = written_cluster.geth_args(written_cluster.spec("node-1"))
    sealer_args = written_cluster.geth_args(written_cluster.spec("sealer"))
    assert service_args[service_args.index("--maxpeers") + 1] == str(FOLLOWER_MAX_PEERS) == "1"
    assert "--maxpeers" not in sealer_args
