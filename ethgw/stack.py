"""The local stack as one unit: Kafka and the Geth cluster now, the services later.

`run_stack` is what `make up` runs in the foreground: it starts every part,
prints the endpoints, shows a progress line while it runs and stops the parts
in reverse order on Ctrl-C (SIGINT) or SIGTERM.
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
import signal

from common.settings import ClusterSettings, KafkaSettings
from ethgw.kafka_broker import KafkaBroker
from ethgw.toolchain import geth_binary
from geth_cluster.cluster import GethCluster
from geth_cluster.local_runtime import LocalProcessRuntime

log = logging.getLogger("ethgw.stack")


def make_cluster(nodes: int | None = None) -> GethCluster:
    settings = ClusterSettings() if nodes is None else ClusterSettings(nodes=nodes)
    return GethCluster(settings, LocalProcessRuntime(geth_binary()))


def known_nodes() -> int:
    """How many service nodes the state folder holds, so `down` stops them all."""
    settings = ClusterSettings()
    found = [p for p in settings.state_dir.glob("node-*") if p.is_dir()]
    return len(found) if found else settings.nodes


async def start_kafka(settings: KafkaSettings) -> KafkaBroker:
    broker = KafkaBroker(settings)
    await asyncio.to_thread(broker.start)
    await broker.ensure_topics()
    return broker


async def stop_all() -> None:
    """Stop the cluster, then Kafka (reverse order of start); each is a no-op when down."""
    cluster = make_cluster(known_nodes())
    try:
        await cluster.down()
    finally:
        await cluster.aclose()
    await asyncio.to_thread(KafkaBroker(KafkaSettings()).stop)


async def run_stack(nodes: int, status_every_s: float = 5.0) -> None:
    """Start Kafka and the cluster, report until interrupted, then stop both."""
    stop = asyncio.Event()
    loop = asyncio.get_running_loop()
    for sig in (signal.SIGINT, signal.SIGTERM):
        loop.add_signal_handler(sig, stop.set)
    kafka_settings = KafkaSettings()
    cluster = make_cluster(nodes)
    try:
        log.info("starting kafka bootstrap=%s", kafka_settings.bootstrap_servers)
        await start_kafka(kafka_settings)
        log.info("starting cluster nodes=%d", nodes)
        await cluster.up()
        _print_endpoints(kafka_settings, cluster)
        while not stop.is_set():
            heads = await cluster.heads()
            print(
                "blocks: "
                + "  ".join(f"{n}={h if h is not None else '-'}" for n, h in heads.items()),
                flush=True,
            )
            with contextlib.suppress(TimeoutError):
                await asyncio.wait_for(stop.wait(), status_every_s)
    finally:
        log.info("stopping")
        await cluster.down()
        await cluster.aclose()
        await asyncio.to_thread(KafkaBroker(kafka_settings).stop)
        log.info("stopped")


def _print_endpoints(kafka: KafkaSettings, cluster: GethCluster) -> None:
    print("ethgw stack is up (Ctrl-C stops it)")
    print(f"  kafka      {kafka.bootstrap_servers}")
    for spec in cluster.specs:
        print(f"  {spec.name:<10} {spec.rpc_url}")
    print(f"  state      {cluster.settings.state_dir.parent}")
