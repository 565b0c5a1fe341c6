"""The drain before a restart: until the node has nothing in flight, within its bounds."""

from __future__ import annotations

import asyncio
from collections.abc import Sequence

import pytest

from consumer_service.task_client import TaskClient
from geth_cluster.drain import Drained, ProviderInflight, drain
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
