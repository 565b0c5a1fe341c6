"""The `ethgw` command: run the local stack and look at it."""

from __future__ import annotations

import argparse
import asyncio
import dataclasses
import sys
import tomllib
from collections.abc import Callable, Coroutine, Sequence
from importlib import metadata
from pathlib import Path
from typing import TYPE_CHECKING, Any

from balancer import DEFAULT_STRATEGY, STRATEGY_NAMES
from devstack import port_plan
from devstack.interrupt import exit_status, run_stoppable
from ethgw.arguments import bounded, like_setting
from ethgw.failures import USER_ERRORS, UserError, report
from ethgw.key_commands import add_key_commands
from ethgw_wire.settings import ClusterSettings, KafkaSettings
from service_kit.logs import configure_logging
from service_kit.paths import REPO_ROOT, keep_state_private

if TYPE_CHECKING:
    from geth_cluster.cluster import NodeStatus

Handler = Callable[[argparse.Namespace], Coroutine[Any, Any, None]]
# Commands with parsers of their own, imported only when run (they load heavy modules).
DELEGATED = {
    "sim": "compare the strategies on the simulated cluster (python -m balancer.sim)",
    "bench": "the load benchmark matrix, --quick for a small one (python -m loadtests.bench)",
}
LOG_LEVELS = ("DEBUG", "INFO", "WARNING", "ERROR")


def format_status(rows: Sequence[NodeStatus]) -> str:
    """The table of `ethgw cluster status`."""
    lines = [f"{'node':<8} {'pid':>7} {'rpc':>6} {'block':>7} {'peers':>5} {'cpu':>6} {'mem':>6}"]
    for row in rows:
        lines.append(
            f"{row.name:<8} {_cell(row.pid):>7} {row.rpc_port or 'ipc':>6} {_cell(row.block):>7} "
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
    from devstack import stack

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


async def _with_known_cluster(action: str, node: str | None = None) -> None:
    """The cluster the last `up` made: its node count and runtime, as the state folder says."""
    from devstack import stack

    await _with_cluster(stack.known_nodes(), action, node, runtime=stack.known_runtime())


async def cluster_down(args: argparse.Namespace) -> None:
    await _with_known_cluster("down")


async def cluster_status(args: argparse.Namespace) -> None:
    await _with_known_cluster("status")


async def cluster_restart(args: argparse.Namespace) -> None:
    await _with_known_cluster("restart", args.node)


async def kafka_up(args: argparse.Namespace) -> None:
    from devstack import stack

    settings = KafkaSettings()
    await stack.start_kafka(settings)
    print(
        f"kafka ready at {settings.bootstrap_servers} (SASL/SCRAM-SHA-512, user"
        f" {settings.username}, password in {settings.platform_password_path})"
    )


async def kafka_down(args: argparse.Namespace) -> None:
    from devstack.kafka_broker import KafkaBroker

    await asyncio.to_thread(KafkaBroker(KafkaSettings()).stop)


async def up(args: argparse.Namespace) -> None:
    from devstack import stack

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
    from devstack import stack

    await stack.stop_all()


async def calibrate(args: argparse.Namespace) -> None:
    from devstack import stack
    from geth_cluster.calibrate import run_calibration

    cluster = stack.make_cluster(stack.known_nodes(), stack.known_runtime())
    try:
        print(
            f"measuring idle for {args.idle_s:.0f}s, each task class's memory need, "
            f"then saturated for {args.load_s:.0f}s"
        )
        run = await run_calibration(cluster, idle_s=args.idle_s, load_s=args.load_s)
    finally:
        await cluster.aclose()
    inputs = run.record.inputs
    print(
        f"Dis_avemin={run.calibration.dis_avemin:.4f} (idle mean d) "
        f"Dis_avemax={run.calibration.dis_avemax:.4f} (saturated mean d) -> {run.path}\n"
        f"  task memory {run.task_memory.describe()}\n"
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
    from devstack import stack
    from loadtests.overload import (
        OverloadPlan,
        StackNotRunningError,
        report_lines,
        stage_overload,
        up_endpoints,
    )

    try:
        port_base = args.port_base or stack.default_port_base()
        endpoints = await up_endpoints(port_base, args.providers)
    except StackNotRunningError as error:
        raise UserError(str(error)) from error
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


def _add_runtime_option(parser: argparse.ArgumentParser) -> None:
    parser.add_argument(
        "--runtime",
        choices=["process", "docker"],
        default=None,
        help="nodes as local processes or Docker containers (default: ETHGW_CLUSTER_RUNTIME, "
        "else process)",
    )


def version() -> str:
    """The installed distribution's version, else the checkout's pyproject.toml's."""
    try:
        return metadata.version("ethgw")
    except metadata.PackageNotFoundError:
        with (REPO_ROOT / "pyproject.toml").open("rb") as project:
            return str(tomllib.load(project)["project"]["version"])


def build_parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(prog="ethgw", description=__doc__)
    parser.add_argument("--version", action="version", version=f"%(prog)s {version()}")
    parser.add_argument(
        "--log-level",
        type=str.upper,
        choices=LOG_LEVELS,
        help="the lowest level of the log lines on stderr (default: INFO; sim and bench "
        "print only warnings unless it is given)",
    )
    commands = parser.add_subparsers(dest="command", required=True, metavar="COMMAND")
    _add_stack_commands(commands)
    _add_cluster_commands(commands)
    _add_calibrate_command(commands)
    add_key_commands(commands)
    _add_demo_command(commands)
    _add_soak_command(commands)
    for name, summary in DELEGATED.items():
        # Their options are theirs: `ethgw sim --help` prints them.
        commands.add_parser(name, help=summary, add_help=False).set_defaults(handler=None)
    kafka = commands.add_parser("kafka", help="the local Kafka broker")
    kafka_actions = kafka.add_subparsers(dest="action", required=True, metavar="ACTION")
    kafka_actions.add_parser("up", help="start the broker, create topics").set_defaults(
        handler=kafka_up
    )
    kafka_actions.add_parser("down", help="stop the broker").set_defaults(handler=kafka_down)
    return parser


def _add_nodes_option(parser: argparse.ArgumentParser) -> None:
    parser.add_argument(
        "--nodes",
        type=like_setting(ClusterSettings, "nodes"),
        default=ClusterSettings().nodes,
        help="service nodes beside the sealer (default: ETHGW_CLUSTER_NODES, else 3)",
    )


def _add_stack_commands(commands: argparse._SubParsersAction[argparse.ArgumentParser]) -> None:
    run = commands.add_parser("up", help="run the whole local stack until Ctrl-C or SIGTERM")
    _add_nodes_option(run)
    count = bounded(int, 1, port_plan.MAX_INSTANCES)
    for option, default, what in (
        ("--providers", port_plan.PROVIDERS, "provider processes"),
        ("--readers", port_plan.READERS, "read service instances"),
        ("--writers", port_plan.WRITERS, "write service instances"),
    ):
        run.add_argument(option, type=count, default=default, help=f"{what} ({default})")
    run.add_argument(
        "--strategy",
        default=DEFAULT_STRATEGY,
        choices=sorted(STRATEGY_NAMES),
        help=f"how the providers pick a node (default: {DEFAULT_STRATEGY})",
    )
    _add_runtime_option(run)
    run.add_argument(
        "--port-base",
        type=bounded(int, 1, port_plan.MAX_PORT_BASE),
        default=None,
        help="the gateway's port; the read, write and provider ports are offsets from it "
        f"(+{port_plan.READ_OFFSET}, +{port_plan.WRITE_OFFSET}, +{port_plan.PROVIDER_OFFSET}; "
        "default: ETHGW_GATEWAY_PORT, else 8000)",
    )
    run.set_defaults(handler=up)
    commands.add_parser("down", help="stop a stack left running").set_defaults(handler=down)


def _add_demo_command(commands: argparse._SubParsersAction[argparse.ArgumentParser]) -> None:
    demo = commands.add_parser("demo", help="stage the scheduler's behaviours on a running stack")
    demos = demo.add_subparsers(dest="demo", required=True, metavar="DEMO")
    overload = demos.add_parser(
        "overload",
        help="load through the gateway, then one node saturated by direct eth_calls: its zones, "
        "its recycling and the gateway's answers (exit 1 if it never reached zone III or never "
        "came back)",
    )
    overload.add_argument("--node", default="node-2", help="the node to saturate (node-2)")
    overload.add_argument(
        "--loops", type=bounded(int, 1, 256), default=16, help="eth_call loops aimed at it (16)"
    )
    overload.add_argument(
        "--users", type=bounded(int, 0, 10_000), default=50, help="Locust users of the 5.1 mix (50)"
    )
    overload.add_argument(
        "--warmup-s", type=float, default=45.0, help="seconds of load before the overload (45)"
    )
    overload.add_argument(
        "--timeout-s", type=float, default=180.0, help="for the node to be back in service (180)"
    )
    overload.add_argument(
        "--port-base",
        type=bounded(int, 1, port_plan.MAX_PORT_BASE),
        default=None,
        help="the running stack's gateway port, as given to `ethgw up` (default: "
        "ETHGW_GATEWAY_PORT, else 8000)",
    )
    overload.add_argument(
        "--providers",
        type=bounded(int, 1, port_plan.MAX_INSTANCES),
        default=port_plan.PROVIDERS,
        help=f"as given to `ethgw up` ({port_plan.PROVIDERS})",
    )
    overload.add_argument(
        "--out", type=Path, default=Path("results/demo"), help="the mix's log and counts"
    )
    overload.set_defaults(handler=demo_overload)


def _add_cluster_commands(commands: argparse._SubParsersAction[argparse.ArgumentParser]) -> None:
    cluster = commands.add_parser("cluster", help="the local Geth private network")
    actions = cluster.add_subparsers(dest="action", required=True, metavar="ACTION")
    cluster_start = actions.add_parser("up", help="start a sealer and N service nodes")
    _add_nodes_option(cluster_start)
    _add_runtime_option(cluster_start)
    cluster_start.set_defaults(handler=cluster_up)
    actions.add_parser("down", help="stop every node (chain data is kept)").set_defaults(
        handler=cluster_down
    )
    actions.add_parser("status", help="a table of the nodes").set_defaults(handler=cluster_status)
    restart = actions.add_parser("restart", help="restart one node and wait for it")
    restart.add_argument("node", help="the node's name, e.g. node-2 (`ethgw cluster status`)")
    restart.set_defaults(handler=cluster_restart)


def _add_calibrate_command(commands: argparse._SubParsersAction[argparse.ArgumentParser]) -> None:
    measure = commands.add_parser(
        "calibrate", help="measure Dis_avemin (idle) and Dis_avemax (saturated) on the cluster"
    )
    seconds = bounded(float, 1.0)
    measure.add_argument(
        "--idle-s", type=seconds, default=10.0, help="seconds of the idle window (10)"
    )
    measure.add_argument(
        "--load-s", type=seconds, default=10.0, help="seconds of the saturated window (10)"
    )
    measure.set_defaults(handler=calibrate)


def _add_soak_command(commands: argparse._SubParsersAction[argparse.ArgumentParser]) -> None:
    soaking = commands.add_parser(
        "soak", help="steady load on a stack of its own; checks memory growth and lost tasks"
    )
    positive = bounded(float, 0.01)
    soaking.add_argument(
        "--minutes", type=positive, default=10.0, help="of load after the warm-up (10)"
    )
    soaking.add_argument(
        "--warmup-s",
        type=bounded(float, 0.0),
        default=None,
        help="load before the memory baseline (default: until the result window is full)",
    )
    soaking.add_argument(
        "--progress-s", type=positive, default=30.0, help="seconds between progress lines (30)"
    )
    soaking.add_argument(
        "--max-growth",
        type=bounded(float, 0.0),
        default=0.10,
        help="allowed RSS growth, as a fraction of the baseline (0.10)",
    )
    soaking.add_argument("--root", type=Path, default=None, help="keep the stack's files here")
    soaking.set_defaults(handler=soak)


def main(argv: Sequence[str] | None = None) -> int:
    """Run the command; a user's mistake ends with one line on stderr and exit 1, an
    interruption with 130 (Ctrl-C) or 143 (SIGTERM) once what it started is stopped."""
    if argv is None:  # the command itself (a test calling main passes its arguments)
        keep_state_private()  # and so every process the command starts
    try:
        return _run(list(sys.argv[1:] if argv is None else argv))
    except KeyboardInterrupt as interrupt:
        return exit_status(interrupt)
    except USER_ERRORS as error:
        report(error)
        return 1


def _run(argv: list[str]) -> int:
    parser = build_parser()
    args, rest = parser.parse_known_args(argv)
    if args.command in DELEGATED:
        if args.log_level is not None:
            configure_logging(args.log_level)
        return _delegate(args.command, rest)
    configure_logging(args.log_level)  # None: ETHGW_LOG_LEVEL, INFO by default
    if rest:
        parser.error(f"unrecognized arguments: {' '.join(rest)}")
    handler: Handler = args.handler
    run_stoppable(handler(args))
    return 0


def _delegate(command: str, argv: list[str]) -> int:
    if command == "sim":
        from balancer.sim.__main__ import main as simulate

        return simulate(argv)
    from loadtests.bench import main as bench

    return bench(argv)


if __name__ == "__main__":
    raise SystemExit(main())
