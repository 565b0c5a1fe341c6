"""Where each node lives and which ports it uses, derived from the settings alone."""

from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path

from ethgw_wire.settings import ClusterSettings

SEALER = "sealer"


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
    def rpc_url(self) -> str:
        return self.rpc_url_template.format(name=self.name, port=self.rpc_port)

    def port_settings(self) -> list[tuple[int, str]]:
        """Each port with the setting that chose it, for clear port-conflict errors."""
        offset = f" + {self.index}" if self.index else ""
        return [
            (self.p2p_port, f"ETHGW_CLUSTER_P2P_PORT_BASE{offset}, p2p of {self.name}"),
            (self.rpc_port, f"ETHGW_CLUSTER_RPC_PORT_BASE{offset}, RPC of {self.name}"),
            (self.authrpc_port, f"ETHGW_CLUSTER_AUTHRPC_PORT_BASE{offset}, authrpc of {self.name}"),
        ]


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
    """The nodes the scheduler balances over: the service nodes, plus the sealer if set."""
    return [s for s in node_specs(settings) if settings.sealer_in_pool or not s.is_sealer]
