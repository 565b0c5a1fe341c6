"""Where each node lives and which ports it uses, derived from the settings alone."""

from __future__ import annotations

import hashlib
from dataclasses import dataclass
from pathlib import Path

from ethgw_wire.settings import ClusterSettings
from geth_cluster.node_rpc import ipc_url

SEALER = "sealer"


def cluster_id(state_dir: Path) -> str:
    """A short name of the cluster in `state_dir`: what tells two clusters' containers and
    cgroups apart on one host (a benchmark beside a test session)."""
    return hashlib.sha256(str(state_dir.resolve()).encode()).hexdigest()[:10]


@dataclass(frozen=True)
class NodeSpec:
    """One Geth node of the private network: its identity, folder and ports."""

    name: str
    index: int
    is_sealer: bool
    datadir: Path
    p2p_port: int
    rpc_port: int
    authrpc_port: int
    rpc_url_template: str = "http://127.0.0.1:{port}"  # ClusterSettings.rpc_url_template

    @property
    def ipc_path(self) -> Path:
        """The sealer's IPC socket, in a folder of its own (0700): its only RPC endpoint."""
        return self.datadir / "ipc" / "geth.ipc"

    @property
    def rpc_url(self) -> str:
        """Where the cluster reaches the node's JSON-RPC: HTTP, or the sealer's IPC socket
        (its account is unlocked to seal, so it serves no HTTP; node_rpc speaks both)."""
        if self.is_sealer:
            return ipc_url(self.ipc_path)
        return self.rpc_url_template.format(name=self.name, port=self.rpc_port)

    def port_settings(self) -> list[tuple[int, str]]:
        """Each port the node listens on with the setting that chose it, for clear
        port-conflict errors (the sealer has no HTTP RPC port)."""
        offset = f" + {self.index}" if self.index else ""
        ports = [
            (self.p2p_port, f"ETHGW_CLUSTER_P2P_PORT_BASE{offset}, p2p of {self.name}"),
            (self.rpc_port, f"ETHGW_CLUSTER_RPC_PORT_BASE{offset}, RPC of {self.name}"),
            (self.authrpc_port, f"ETHGW_CLUSTER_AUTHRPC_PORT_BASE{offset}, authrpc of {self.name}"),
        ]
        return [p for p in ports if not (self.is_sealer and p[0] == self.rpc_port)]


def node_specs(settings: ClusterSettings) -> list[NodeSpec]:
    """The sealer (index 0) followed by the service nodes node-1 .. node-N."""
    names = [SEALER] + [f"node-{i}" for i in range(1, settings.nodes + 1)]
    return [
        NodeSpec(
            name=name,
            index=index,
            is_sealer=index == 0,
            datadir=settings.state_dir / name,
            p2p_port=settings.p2p_port_base + index,
            rpc_port=settings.rpc_port_base + index,
            authrpc_port=settings.authrpc_port_base + index,
            rpc_url_template=settings.rpc_url_template,
        )
        for index, name in enumerate(names)
    ]


def pool_specs(settings: ClusterSettings) -> list[NodeSpec]:
    """The nodes the scheduler balances over: the service nodes (the sealer, over IPC only,
    is out of the providers' reach)."""
    return [s for s in node_specs(settings) if not s.is_sealer]
