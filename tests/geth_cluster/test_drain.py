"""The drain before a restart: until the node has nothing in flight, within its bounds."""

from __future__ import annotations

import asyncio
import time
from collections.abc import AsyncIterator, Sequence
from contextlib import asynccontextmanager

import pytest

from consumer_service.task_client import TaskClient
from ethgw_wire.node_reports import EventKind
from geth_cluster.cluster import GethCluster
from geth_cluster.config import ManagerSettings
from geth_cluster.drain import Drained, ProviderInflight, drain
from geth_cluster.manager import ClusterManager
from tests.geth_cluster.test_manager import ensure_following, wait_following
from tests.pipeline_fixtures import ProviderProcess, run_task

NODE = "node-1"


class Counts:
    """A fake in-flight source answering the given counts in turn, the last one for good."""

    def __init__(self, counts: Sequence[int | None]) -> None:
        self._counts = list(counts)
        self.reads = 0

    async def inflight(self, node: str) -> int | None:
        assert node == NODE
        self.reads += 1
        return self._counts.pop(0) if len(self._counts) > 1 else self._counts[0]


class Hanging:
    """A source that never answers (a provider whose /metrics hangs)."""

    async def inflight(self, node: str) -> int | None:
        await asyncio.sleep(3600)
        return 0


async def test_drain_ends_once_the_node_has_nothing_in_flight() -> None:
    """Counts 3, 2, 0: the drain ends at the 0, long before its bound."""
    source = Counts([3, 2, 0])
    drained = await drain(NODE, source, bound_s=5.0, settle_s=0.0, poll_s=0.05)
    assert drained.empty
    assert drained.inflight == 0
    assert source.reads == 3
    assert drained.waited_s < 1.0


async def test_drain_gives_up_waiting_at_its_bound() -> None:
    """A node that keeps a task in flight is drained for the bound, then restarted anyway."""
    drained = await drain(NODE, Counts([1]), bound_s=0.4, settle_s=0.0, poll_s=0.05)
    assert not drained.empty
    assert drained.inflight == 1
    assert 0.4 <= drained.waited_s < 0.8


async def test_unknown_count_waits_to_the_bound() -> None:
    """A provider that does not answer (None) is not taken for an empty node."""
    drained = await drain(NODE, Counts([None]), bound_s=0.3, settle_s=0.0, poll_s=0.05)
    assert not drained.empty
    assert drained.inflight is None
    assert drained.waited_s >= 0.3


async def test_drain_lasts_at_least_the_settle_time() -> None:
    """Nothing in flight at once still waits settle_s, for DRAINING to reach the providers."""
    source = Counts([0])
    drained = await drain(NODE, source, bound_s=5.0, settle_s=0.3, poll_s=0.05)
    assert drained.empty
    assert drained.waited_s >= 0.3
    assert source.reads == 1


async def test_a_hanging_source_cannot_hold_the_drain_past_its_bound() -> None:
    """A read that never returns is cut at the bound; the count is then unknown."""
    drained = await drain(NODE, Hanging(), bound_s=0.3, settle_s=0.0, poll_s=0.05)
    assert not drained.empty
    assert drained.inflight is None
    assert drained.waited_s < 1.0


def test_drain_figures_read_as_an_event_detail() -> None:
    """The RESTARTING event says how the drain ended, how long it took and the last count."""
    assert Drained(False, 10.0, None).describe() == (
        "drain=bound drain_waited_s=10.00 inflight=unknown"
    )


@pytest.mark.slow
async def test_provider_inflight_reads_a_real_providers_metrics(
    provider: ProviderProcess, tasks: TaskClient
) -> None:
    """After a read ran on the session provider its node has nothing in flight; with a
    provider that does not answer, the count is unknown."""
    await run_task(tasks, "chain.block_number")
    dead = "http://127.0.0.1:9"  # discard port: refused
    alive = ProviderInflight([provider.url])
    with_dead = ProviderInflight([provider.url, dead])
    try:
        nodes = [f"node-{i}" for i in (1, 2)]
        counts = [await alive.inflight(node) for node in nodes]
        unknown = await with_dead.inflight(NODE)
    finally:
        await alive.aclose()
        await with_dead.aclose()
    assert counts == [0, 0]
    assert unknown is None


class FakeProvider:
    """A provider's /metrics over real HTTP: `held` tasks in flight on `node` for `hold_s`
    from the first read, then none."""

    def __init__(self, node: str, held: int, hold_s: float) -> None:
        self._node, self._held, self._hold_s = node, held, hold_s
        self._first_read: float | None = None
        self.reads = 0

    def page(self) -> str:
        now = time.monotonic()
        if self._first_read is None:
            self._first_read = now
        self.reads += 1
        count = self._held if now - self._first_read < self._hold_s else 0
        return f'ethgw_provider_inflight{{node="{self._node}"}} {count}.0\n'

    async def _serve(self, reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
        await reader.readuntil(b"\r\n\r\n")
        body = self.page().encode()
        head = f"HTTP/1.1 200 OK\r\nContent-Length: {len(body)}\r\nConnection: close\r\n\r\n"
        writer.write(head.encode() + body)
        await writer.drain()
        writer.close()

    @asynccontextmanager
    async def serving(self) -> AsyncIterator[str]:
        """Listens on a free loopback port; yields its base URL."""
        server = await asyncio.start_server(self._serve, "127.0.0.1", 0)
        port = server.sockets[0].getsockname()[1]
        async with server:
            yield f"http://127.0.0.1:{port}"


@pytest.mark.slow
async def test_restart_waits_for_the_nodes_tasks_in_flight(geth_cluster: GethCluster) -> None:
    """A restart of node-2 while a provider reports 2 tasks on it for 1.5 s stays DRAINING
    until they are done, not for the fixed drain_s, and says so in its restarting event."""
    await ensure_following(geth_cluster)
    fake = FakeProvider("node-2", held=2, hold_s=1.5)
    async with fake.serving() as url:
        settings = ManagerSettings(
            sample_interval_s=60.0,
            publish=False,
            recycle=False,
            heal=False,
            drain_s=0.0,
            provider_urls=(url,),
            drain_settle_s=0.2,
            drain_max_s=20.0,
        )
        try:
            async with ClusterManager(geth_cluster, settings) as running:
                running.recycler.restart("node-2")
                await running.recycler.wait_idle()
                events = running.events.recent()
        finally:
            await wait_following(geth_cluster, 60.0)
    restarting = next(e for e in events if e.kind is EventKind.RESTARTING)
    print(f"restarting event: {restarting.detail}")  # the figure docs/cluster-manager.md quotes
    assert [e.kind for e in events][-1] is EventKind.UP
    assert "drain=empty" in restarting.detail
    assert "inflight=0" in restarting.detail
    waited = float(restarting.detail.split("drain_waited_s=")[1].split()[0])
    assert 1.5 <= waited < 5.0
    assert fake.reads >= 2
