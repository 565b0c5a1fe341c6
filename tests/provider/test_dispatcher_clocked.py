"""The round loop with a clocked strategy (lbh_adaptive): called through `decide` with the wall
clock and the in-flight counts at each report's sample, its own valve and no other, and its
recycle requests forwarded. In-memory task source, result sink and node states."""

from __future__ import annotations

import asyncio
import time
from collections.abc import Mapping, Sequence
from dataclasses import replace
from typing import Any

from aiohttp import web
from aiohttp.test_utils import TestServer
from prometheus_client import REGISTRY

from balancer import (
    AdaptiveSettings,
    AdaptiveState,
    Decision,
    LBHAdaptive,
    NodeState,
    Plan,
    Task,
)
from ethgw_wire.operations import new_task
from provider.dispatcher import ClockedStrategy
from provider.handlers import Handler, Job
from provider.recycle_requests import RecycleRequests
from tests.provider.test_dispatcher import World, until

FAST_PAUSE = AdaptiveSettings(max_pause_s=0.1)


class RecordingClocked:
    """Sends the first `budget` tasks to node-1 and holds the rest; records every call."""

    name = "recording"

    def __init__(self, budget: int) -> None:
        self.budget = budget
        self.calls: list[tuple[float, dict[str, int], dict[str, int]]] = []
        self.service: list[dict[str, float]] = []  # service_s of each call
        self.planned = 0

    def plan(self, nodes: Sequence[NodeState], tasks: Sequence[Task]) -> Plan:
        self.planned += 1
        return Plan([], [t.task_id for t in tasks], [], {}, 1.0, False)

    def decide(
        self,
        nodes: Sequence[NodeState],
        tasks: Sequence[Task],
        *,
        now: float,
        sampled_inflight: Mapping[str, int],
        service_s: Mapping[str, float],
    ) -> Decision:
        self.calls.append((now, dict(sampled_inflight), {n.node_id: n.inflight for n in nodes}))
        self.service.append(dict(service_s))
        sent = [(t.task_id, "node-1") for t in tasks[: self.budget]]
        self.budget -= len(sent)
        paused = bool(tasks) and not sent
        plan = Plan(sent, [t.task_id for t in tasks[len(sent) :]], [], {}, -1.0, paused)
        return Decision(plan, AdaptiveState())


class Gate:
    """A read handler that holds every call until `open()`, counting the calls by node."""

    def __init__(self) -> None:
        self.released = asyncio.Event()
        self.calls: list[str] = []

    async def handle(self, job: Job) -> dict[str, Any]:
        self.calls.append(job.node_id)
        await self.released.wait()
        return {"block_number": 7, "node": job.node_id}

    @property
    def handlers(self) -> dict[str, Handler]:
        return {"chain.block_number": self.handle}

    def open_when(self, condition: bool) -> bool:
        """`condition`, opening the gate once it holds (so the loop can stop and drain)."""
        if condition:
            self.released.set()
        return condition


def test_lbh_adaptive_is_a_clocked_strategy() -> None:
    """The dispatcher's protocol matches lbh_adaptive, statically and at run time."""
    strategy: ClockedStrategy = LBHAdaptive(0.1, 1.0)
    assert isinstance(strategy, ClockedStrategy)


async def test_a_clocked_strategy_is_called_with_the_wall_clock_not_plan() -> None:
    """Each round calls decide with now = time.time(); plan() is never called."""
    world = World(RecordingClocked(budget=1), {"chain.block_number": _answer})
    await world.add_node("node-1")
    task = world.submit(new_task("chain.block_number", {}))
    before = time.time()
    await world.run_until(lambda: world.result_of(task) is not None)
    now = world.strategy.calls[0][0]
    assert before <= now <= time.time()
    assert world.strategy.planned == 0


async def test_sampled_inflight_is_the_count_when_the_report_was_sampled() -> None:
    """Tasks started after a report's sample are not in its count; a later sample has them."""
    gate = Gate()
    world = World(RecordingClocked(budget=2), gate.handlers)
    await world.add_node("node-1", sampled_at=time.time() - 1.0)
    for _ in range(3):  # two run (held at the gate), the third keeps the rounds going
        world.submit(new_task("chain.block_number", {}))
    async with world.running():
        await until(lambda: len(gate.calls) == 2 and len(world.strategy.calls) >= 3)
        before_sample = world.strategy.calls[-1]
        await world.add_node("node-1", sampled_at=time.time())
        calls = len(world.strategy.calls)
        await until(lambda: gate.open_when(len(world.strategy.calls) > calls))
    after_sample = world.strategy.calls[-1]
    assert (before_sample[1], before_sample[2]) == ({"node-1": 0}, {"node-1": 2})
    assert after_sample[1] == {"node-1": 2}


async def test_a_clocked_strategy_gets_no_service_time_before_a_task_ends() -> None:
    """Until a task has finished on a node, that node has no service time in the rounds."""
    gate = Gate()
    world = World(RecordingClocked(budget=1), gate.handlers)
    await world.add_node("node-1")
    for _ in range(2):  # one runs (held at the gate), the other keeps the rounds going
        world.submit(new_task("chain.block_number", {}))
    async with world.running():
        await until(lambda: len(gate.calls) == 1 and len(world.strategy.calls) >= 3)
        before = list(world.strategy.service)
        gate.released.set()
    assert before
    assert all(service == {} for service in before)


async def test_service_time_is_the_nodes_share_not_the_receipt_wait() -> None:
    """A node's service time runs from the slot to node_done: the wait after it is left out."""
    node_s, after_s = 0.2, 0.6

    async def write_like(job: Job) -> dict[str, Any]:
        await asyncio.sleep(node_s)  # the node's work
        job.node_done()
        await asyncio.sleep(after_s)  # the receipt wait, on no node
        return {"block_number": 7, "node": job.node_id}

    world = World(RecordingClocked(budget=1), {"chain.block_number": write_like})
    await world.add_node("node-1")
    first = world.submit(new_task("chain.block_number", {}))
    world.submit(new_task("chain.block_number", {}))  # held: keeps the rounds going
    await world.run_until(lambda: world.result_of(first) is not None)
    seen = world.dispatcher.service_s(time.time())["node-1"]
    assert node_s <= seen < node_s + after_s / 2
    assert world.strategy.service[-1] == {"node-1": seen}


async def test_lbh_adaptive_sends_a_task_to_the_faster_node_at_equal_load() -> None:
    """Two idle nodes, one of them seen slower: the next task goes to the faster one."""
    took = {"node-1": 0.3, "node-2": 0.02}

    async def by_node(job: Job) -> dict[str, Any]:
        await asyncio.sleep(took[job.node_id])
        return {"block_number": 7, "node": job.node_id}

    world = World(LBHAdaptive(0.1, 1.0), {"chain.block_number": by_node})
    for node_id in ("node-1", "node-2"):
        await world.add_node(node_id)
    warm_up = [world.submit(new_task("chain.block_number", {})) for _ in range(2)]
    await world.run_until(lambda: all(world.result_of(t) is not None for t in warm_up))
    assert sorted(world.dispatcher.service_s(time.time())) == ["node-1", "node-2"]  # one each
    task = world.submit(new_task("chain.block_number", {}))
    await world.run_until(lambda: world.result_of(task) is not None)
    result = world.result_of(task)
    assert result is not None
    assert result.node == "node-2"


async def test_a_clocked_strategys_pause_gets_no_valve_from_the_dispatcher() -> None:
    """Past max_pause, a paused decision sends nothing: the spec's valve is not applied."""
    world = World(RecordingClocked(budget=0), {"chain.block_number": _answer}, max_pause_s=0.05)
    await world.add_node("node-1")
    world.submit(new_task("chain.block_number", {}))
    await world.run_until(lambda: len(world.strategy.calls) >= 2 and _waited(world, 0.3))
    assert world.results.results == []
    assert world.dispatcher.held == 1


async def test_lbh_adaptive_sends_reads_beyond_every_nodes_room_through_its_valve() -> None:
    """With both nodes full by d, the reads left go out through lbh_adaptive's valve."""
    gate = Gate()
    # The floor is min_inflight (4), not the calibration's count (18 here), so 8 fit by room.
    strategy = LBHAdaptive(0.1, 1.0, settings=replace(FAST_PAUSE, calibrated_floor=False))
    world = World(strategy, gate.handlers)
    for node_id in ("node-1", "node-2"):  # d = 0.955: room only up to min_inflight (4)
        await world.add_node(node_id, memory=0.1, cpu=0.95)
    forced_before = _sample("ethgw_provider_forced_dispatches_total")
    for _ in range(12):
        world.submit(new_task("chain.block_number", {}))
    await world.run_until(lambda: gate.open_when(len(gate.calls) == 12))
    assert sorted(set(gate.calls)) == ["node-1", "node-2"]
    assert _sample("ethgw_provider_forced_dispatches_total") - forced_before == 4


async def test_lbh_adaptive_stuck_on_memory_asks_the_manager_to_recycle_once() -> None:
    """LBH held below 0 by memory: the highest-d node is asked to restart, once per cool-down."""
    manager, asked = await _fake_manager()
    requests = RecycleRequests(str(manager.make_url("")), cooldown_s=60.0)
    strategy = LBHAdaptive(0.1, 1.0, settings=FAST_PAUSE)
    world = World(strategy, {"chain.block_number": _answer}, recycle_requests=requests)
    # Zone II by memory alone, and too little memory left to take anything: a deadlock.
    await world.add_node("node-1", memory=0.6, cpu=0.1, free_memory_mb=50.0)
    await world.add_node("node-2", memory=0.7, cpu=0.1, free_memory_mb=50.0)
    named_before = _sample(_RECYCLED, {"node": "node-2"})
    world.submit(new_task("chain.block_number", {}))
    try:
        await world.run_until(lambda: _sample(_RECYCLED, {"node": "node-2"}) >= named_before + 3)
        await requests.close()
    finally:
        await manager.close()
    assert asked == ["node-2"]


_RECYCLED = "ethgw_provider_recycle_requests_total"


async def _answer(job: Job) -> dict[str, Any]:
    return {"block_number": 7, "node": job.node_id}


def _waited(world: World[RecordingClocked], seconds: float) -> bool:
    return time.time() - world.strategy.calls[0][0] >= seconds


def _sample(name: str, labels: dict[str, str] | None = None) -> float:
    return REGISTRY.get_sample_value(name, labels or {}) or 0.0


async def _fake_manager() -> tuple[TestServer, list[str]]:
    """A cluster manager whose restart route records the node ids it is asked for."""
    asked: list[str] = []

    async def restart(request: web.Request) -> web.Response:
        asked.append(request.match_info["node_id"])
        return web.json_response({"status": "started"}, status=202)

    app = web.Application()
    app.router.add_post("/nodes/{node_id}/restart", restart)
    server = TestServer(app)
    await server.start_server()
    return server, asked
