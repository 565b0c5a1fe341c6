"""The `ethgw` command: run the local stack and look at it."""

from __future__ import annotations

import argparse
import asyncio
import dataclasses
import sys
from collections.abc import Callable, Coroutine, Sequence
from pathlib import Path
from typing import Any

from balancer import STRATEGY_NAMES
from devstack import stack
from devstack.interrupt import run_stoppable
from devstack.kafka_broker import KafkaBroker, KafkaBrokerError
from ethgw_wire.settings import ClusterSettings, KafkaSettings
from geth_cluster.cluster import NodeStatus
from geth_cluster.errors import ClusterError
from loadtests.overload import StackNotRunningError
from service_kit.logs import configure_logging
from service_kit.paths import default_state_dir
from service_kit.ports import PortInUseError

Handler = Callable[[argparse.Namespace], Coroutine[Any, Any, None]]


def format_status(rows: Sequence[NodeStatus]) -> str:
    """The table of `ethgw cluster status`."""
    lines = [f"{'node':<8} {'pid':>7} {'rpc':>6} {'block':>7} {'peers':>5} {'cpu':>6} {'mem':>6}"]
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


async def _with_cluster(
    nodes: int, action: str, node: str | None = None, runtime: str | None = None
) -> None:
    """`runtime` None: ETHGW_CLUSTER_RUNTIME, else process."""
    cluster = stack.make_cluster(nodes, runtime)
    try:
        if action == "up":
            await stack.ensure_runtime_ready(cluster)
            await cluster.up()
        elif action == "down":
            await cluster.down()
            return
        elif action == "restart" and node is not None:
            await cluster.restart_node(node)
        print(format_status(await cluster.status()))
    finally:
        await cluster.aclose()


async def cluster_up(args: argparse.Namespace) -> None:
    await _with_cluster(args.nodes, "up", runtime=args.runtime)


async def cluster_down(args: argparse.Namespace) -> None:
    await _with_cluster(stack.known_nodes(), "down", runtime=stack.known_runtime())


async def cluster_status(args: argparse.Namespace) -> None:
    await _with_cluster(stack.known_nodes(), "status", runtime=stack.known_runtime())


async def cluster_restart(args: argparse.Namespace) -> None:
    await _with_cluster(stack.known_nodes(), "restart", args.node, runtime=stack.known_runtime())


async def kafka_up(args: argparse.Namespace) -> None:
    settings = KafkaSettings()
    await stack.start_kafka(settings)
    print(f"kafka ready at {settings.bootstrap_servers}")


async def kafka_down(args: argparse.Namespace) -> None:
    await asyncio.to_thread(KafkaBroker(KafkaSettings()).stop)


async def up(args: argparse.Namespace) -> None:
    shape = stack.Shape(
        nodes=args.nodes,
        providers=args.providers,
        readers=args.readers,
        writers=args.writers,
        strategy=args.strategy,
        runtime=args.runtime,
    )
    await stack.run_stack(shape, args.port_base)


async def down(args: argparse.Namespace) -> None:
    await stack.stop_all()


async def calibrate(args: argparse.Namespace) -> None:
    from geth_cluster.calibrate import run_calibration

    cluster = stack.make_cluster(stack.known_nodes(), stack.known_runtime())
    try:
        print(f"measuring idle for {args.idle_s:.0f}s, then saturated for {args.load_s:.0f}s")
        run = await run_calibration(cluster, idle_s=args.idle_s, load_s=args.load_s)
    finally:
        await cluster.aclose()
    inputs = run.record.inputs
    print(
        f"Dis_avemin={run.calibration.dis_avemin:.4f} (idle mean d) "
        f"Dis_avemax={run.calibration.dis_avemax:.4f} (saturated mean d) -> {run.path}\n"
        f"  for {inputs.nodes} pool nodes on {inputs.runtime}, host {inputs.host_cores} cores "
        f"{inputs.host_memory_mb} MB, geth {inputs.geth_version}; `ethgw up` reuses it while "
        "these stay the same"
    )


async def soak(args: argparse.Namespace) -> None:
    from loadtests.soak import SoakPlan, run_soak

    plan = SoakPlan(minutes=args.minutes, progress_s=args.progress_s, max_growth=args.max_growth)
    if args.warmup_s is not None:
        plan = dataclasses.replace(plan, warmup_s=args.warmup_s)
    verdict = await run_soak(plan, args.root)
    if not verdict.ok:
        raise SystemExit(1)


async def demo_overload(args: argparse.Namespace) -> None:
    from loadtests.overload import OverloadPlan, report_lines, stage_overload, up_endpoints

    endpoints = await up_endpoints(args.port_base, args.providers)
    plan = OverloadPlan(
        node=args.node,
        burn_loops=args.loops,
        warmup_s=args.warmup_s,
        timeout_s=args.timeout_s,
        mix_users=args.users,
    )
    report = await stage_overload(endpoints, plan, lambda line: print(line, flush=True), args.out)
    print("\n".join(report_lines(report)), flush=True)
    if not report.ok:
        raise SystemExit(1)


async def keys_create(args: argparse.Namespace) -> None:
    from gateway.keys import create_key

    key = create_key(default_state_dir(), args.name, args.role)
    print(key)  # shown once: only its hash is kept


def _add_runtime_option(parser: argparse.ArgumentParser) -> None:
    parser.add_argument(
        "--runtime",
        choices=["process", "docker"],
        default=None,
        help="nodes as local processes or Docker containers (default: ETHGW_CLUSTER_RUNTIME, "
        "else process)",
    )


def build_parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(prog="ethgw", description=__doc__)
    parser.add_argument("--log-level", default="INFO")
    commands = parser.add_subparsers(dest="command", required=True)
    default_nodes = ClusterSettings().nodes

    run = commands.add_parser("up", help="run the whole local stack until Ctrl-C")
    run.add_argument("--nodes", type=int, default=default_nodes)
    run.add_argument("--providers", type=int, default=1)
    run.add_argument("--readers", type=int, default=2)
    run.add_argument("--writers", type=int, default=2)
    run.add_argument("--strategy", default="lbh", choices=sorted(STRATEGY_NAMES))
    _add_runtime_option(run)
    run.add_argument(
        "--port-base",
        type=int,
        default=stack.GATEWAY_PORT,
        help="the gateway's port; the read, write and provider ports are offsets from it",
    )
    run.set_defaults(handler=up)
    commands.add_parser("down", help="stop a stack left running").set_defaults(handler=down)

    cluster = commands.add_parser("cluster", help="the local Geth private network")
    actions = cluster.add_subparsers(dest="action", required=True)
    cluster_start = actions.add_parser("up", help="start a sealer and N service nodes")
    cluster_start.add_argument("--nodes", type=int, default=default_nodes)
    _add_runtime_option(cluster_start)
    cluster_start.set_defaults(handler=cluster_up)
    actions.add_parser("down", help="stop every node (chain data is kept)").set_defaults(
        handler=cluster_down
    )
    actions.add_parser("status", help="a table of the nodes").set_defaults(handler=cluster_status)
    restart = actions.add_parser("restart", help="restart one node and wait for it")
    restart.add_argument("node")
    restart.set_defaults(handler=cluster_restart)

    measure = commands.add_parser(
        "calibrate", help="measure Dis_avemin (idle) and Dis_avemax (saturated) on the cluster"
    )
    measure.add_argument("--idle-s", type=float, default=10.0)
    measure.add_argument("--load-s", type=float, default=10.0)
    measure.set_defaults(handler=calibrate)

    keys = commands.add_parser("keys", help="the gateway's API keys")
    key_actions = keys.add_subparsers(dest="action", required=True)
    create = key_actions.add_parser("create", help="make a key and print it once")
    create.add_argument("--name", required=True)
    create.add_argument("--role", choices=["user", "admin"], default="user")
    create.set_defaults(handler=keys_create)

    demo = commands.add_parser("demo", help="stage the scheduler's behaviours on a running stack")
    demos = demo.add_subparsers(dest="demo", required=True)
    overload = demos.add_parser(
        "overload",
        help="load through the gateway, then one node saturated by direct eth_calls: its zones, "
        "its recycling and the gateway's answers (exit 1 if it never reached zone III or never "
        "came back)",
    )
    overload.add_argument("--node", default="node-2", help="the node to saturate")
    overload.add_argument("--loops", type=int, default=16, help="eth_call loops aimed at it")
    overload.add_argument("--users", type=int, default=50, help="Locust users of the 5.1 mix")
    overload.add_argument("--warmup-s", type=float, default=45.0, help="load before the overload")
    overload.add_argument(
        "--timeout-s", type=float, default=180.0, help="for the node to be back in service"
    )
    overload.add_argument("--port-base", type=int, default=stack.GATEWAY_PORT)
    overload.add_argument("--providers", type=int, default=1, help="as given to `ethgw up`")
    overload.add_argument(
        "--out", type=Path, default=Path("results/demo"), help="the mix's log and counts"
    )
    overload.set_defaults(handler=demo_overload)

    soaking = commands.add_parser(
        "soak", help="steady load on a stack of its own; checks memory growth and lost tasks"
    )
    soaking.add_argument("--minutes", type=float, default=10.0, help="of load after the warm-up")
    soaking.add_argument(
        "--warmup-s",
        type=float,
        default=None,
        help="load before the memory baseline (default: until the result window is full)",
    )
    soaking.add_argument("--progress-s", type=float, default=30.0)
    soaking.add_argument("--max-growth", type=float, default=0.10, help="allowed RSS growth")
    soaking.add_argument("--root", type=Path, default=None, help="keep the stack's files here")
    soaking.set_defaults(handler=soak)

    commands.add_parser(
        "sim",
        help="compare the strategies on the simulated cluster (python -m balancer.sim)",
        add_help=False,
    ).set_defaults(handler=None)
    commands.add_parser(
        "bench",
        help="the load benchmark matrix, --quick for a small one (python -m loadtests.bench)",
        add_help=False,
    ).set_defaults(handler=None)

    kafka = commands.add_parser("kafka", help="the local Kafka broker")
    kafka_actions = kafka.add_subparsers(dest="action", required=True)
    kafka_actions.add_parser("up", help="start the broker, create topics").set_defaults(
        handler=kafka_up
    )
    kafka_actions.add_parser("down", help="stop the broker").set_defaults(handler=kafka_down)
    return parser


def main(argv: Sequence[str] | None = None) -> int:
    argv = list(sys.argv[1:] if argv is None else argv)
    if argv[:1] == ["sim"]:
        from balancer.sim.__main__ import main as simulate

        return simulate(argv[1:])
    if argv[:1] == ["bench"]:
        from loadtests.bench import main as bench

        return bench(argv[1:])
    args = build_parser().parse_args(argv)
    configure_logging(args.log_level)
    handler: Handler = args.handler
    try:
        run_stoppable(handler(args))
    except (ClusterError, PortInUseError, KafkaBrokerError, StackNotRunningError) as exc:
        print(f"ethgw: {exc}", file=sys.stderr)
        return 1
    except KeyboardInterrupt:
        return 130
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
