"""The `ethgw` command: run the local stack and look at it."""

from __future__ import annotations

import argparse
import asyncio
import sys
from collections.abc import Sequence

from common.logs import configure_logging
from common.ports import PortInUseError
from common.settings import ClusterSettings
from ethgw.toolchain import geth_binary
from geth_cluster.cluster import GethCluster, NodeStatus
from geth_cluster.errors import ClusterError
from geth_cluster.local_runtime import LocalProcessRuntime


def _cluster(nodes: int | None = None) -> GethCluster:
    settings = ClusterSettings() if nodes is None else ClusterSettings(nodes=nodes)
    return GethCluster(settings, LocalProcessRuntime(geth_binary()))


def format_status(rows: Sequence[NodeStatus]) -> str:
    """The table of `ethgw cluster status`."""
    header = f"{'node':<8} {'pid':>7} {'rpc':>6} {'block':>7} {'peers':>5} {'cpu':>6} {'mem':>6}"
    lines = [header]
    for row in rows:
        lines.append(
            f"{row.name:<8} {_cell(row.pid):>7} {row.rpc_port:>6} {_cell(row.block):>7} "
            f"{_cell(row.peers):>5} {_ratio(row.cpu):>6} {_ratio(row.memory):>6}"
        )
    return "\n".join(lines)


def _cell(value: int | None) -> str:
    return "-" if value is None else str(value)


def _ratio(value: float | None) -> str:
    return "-" if value is None else f"{value:.3f}"


async def cluster_up(nodes: int) -> None:
    cluster = _cluster(nodes)
    try:
        await cluster.up()
        print(format_status(await cluster.status()))
    finally:
        await cluster.aclose()


async def cluster_down() -> None:
    cluster = _cluster(_known_nodes())
    try:
        await cluster.down()
    finally:
        await cluster.aclose()


async def cluster_status() -> None:
    cluster = _cluster(_known_nodes())
    try:
        print(format_status(await cluster.status()))
    finally:
        await cluster.aclose()


async def cluster_restart(node: str) -> None:
    cluster = _cluster(_known_nodes())
    try:
        await cluster.restart_node(node)
        print(format_status(await cluster.status()))
    finally:
        await cluster.aclose()


def _known_nodes() -> int:
    """How many service nodes the state folder holds (so `down` stops them all)."""
    settings = ClusterSettings()
    found = [p for p in settings.state_dir.glob("node-*") if p.is_dir()]
    return max(len(found), 1) if found else settings.nodes


def build_parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(prog="ethgw", description=__doc__)
    parser.add_argument("--log-level", default="INFO")
    commands = parser.add_subparsers(dest="command", required=True)

    cluster = commands.add_parser("cluster", help="the local Geth private network")
    cluster_commands = cluster.add_subparsers(dest="action", required=True)
    up = cluster_commands.add_parser("up", help="start a sealer and N service nodes")
    up.add_argument("--nodes", type=int, default=ClusterSettings().nodes)
    cluster_commands.add_parser("down", help="stop every node (chain data is kept)")
    cluster_commands.add_parser("status", help="a table of the nodes")
    restart = cluster_commands.add_parser("restart", help="restart one node and wait for it")
    restart.add_argument("node")
    return parser


def main(argv: Sequence[str] | None = None) -> int:
    args = build_parser().parse_args(argv)
    configure_logging(args.log_level)
    try:
        asyncio.run(_dispatch(args))
    except (ClusterError, PortInUseError) as exc:
        print(f"ethgw: {exc}", file=sys.stderr)
        return 1
    except KeyboardInterrupt:
        return 130
    return 0


async def _dispatch(args: argparse.Namespace) -> None:
    if args.command == "cluster":
        actions = {
            "up": lambda: cluster_up(args.nodes),
            "down": cluster_down,
            "status": cluster_status,
            "restart": lambda: cluster_restart(args.node),
        }
        await actions[args.action]()


if __name__ == "__main__":
    raise SystemExit(main())
