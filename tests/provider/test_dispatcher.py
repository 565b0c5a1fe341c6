"""The round loop with an in-memory task source, result sink and node states: holding,
dispatching, failing over and committing (the real Kafka path runs in tests/pipeline)."""

from __future__ import annotations

import asyncio
import contextlib
from collections.abc import AsyncIterator, Callable, Sequence
from pathlib import Path
from typing import Any, Generic, TypeVar

from aiokafka import TopicPartition
from prometheus_client import REGISTRY, generate_latest

from balancer import LBHScheduler, NodeState, Plan, Strategy, Task
from ethgw_wire.errors import InsufficientFundsError, NodeBehindError, NotFoundError
from ethgw_wire.kafka import encode
from ethgw_wire.messages import ResultMessage, TaskMessage, TaskStatus
from ethgw_wire.node_reports import NodeReport
from ethgw_wire.operations import new_task
from ethgw_wire.provider_metrics import dispatched_by_placement
from ethgw_wire.sealing import TaskOpener, TaskSealer, ensure_sealing_keys
from ethgw_wire.topic_mirror import MemoryTable
from provider.chain import NodeClient, NodeUnreachableError
from provider.config import ProviderSettings
from provider.dispatcher import Dispatcher
from provider.handlers import Handler, Job
from provider.journal_pruning import JournalPruner
from provider.nodes import NodeView
from provider.recycle_requests import RecycleRequests
from provider.task_stream import MemoryResultSink, MemoryTaskSource, TaskRecord
from provider.transactions import JournalRecord
from tests.provider.fake_node import FakeNode

READS = TopicPartition("ethgw.tasks.read", 0)
WRITES = TopicPartition("ethgw.tasks.write", 0)
TIMEOUT_S = 5.0


class ScriptedStrategy:
    """Holds every task for `hold_rounds` rounds, then sends each to `node`; or pauses."""

    name = "scripted"

    def __init__(self, hold_rounds: int = 0, node: str = "node-1", paused: bool = False) -> None:
        self.hold_rounds = hold_rounds
        self.node = node
        self.paused = paused
        self.rounds: list[list[str]] = []  # the task ids each round was asked to place

    def plan(self, nodes: Sequence[NodeState], tasks: Sequence[Task]) -> Plan:
        self.rounds.append([t.task_id for t in tasks])
        dispatch = not self.paused and len(self.rounds) > self.hold_rounds
        assignments = [(t.task_id, self.node) for t in tasks] if dispatch else []
        held = [] if dispatch else [t.task_id for t in tasks]
        lbh = -1.0 if self.paused else 1.0
        return Plan(assignments, held, [], {}, lbh, self.paused)


S = TypeVar("S", bound=Strategy)


async def until(done: Callable[[], bool]) -> None:
    """Wait until `done()` holds; fail after TIMEOUT_S."""
    async with asyncio.timeout(TIMEOUT_S):
        while not done():  # noqa: ASYNC110 (what makes it true runs in other tasks)
            await asyncio.sleep(0.01)


class World(Generic[S]):
    """A dispatcher over in-memory parts, and what it published and committed."""

    def __init__(
        self,
        strategy: S,
        handlers: dict[str, Handler],
        publish_s: float = 0.0,
        recycle_requests: RecycleRequests | None = None,
        max_result_bytes: int = 512 * 1024,
        results: MemoryResultSink | None = None,
        opener: TaskOpener | None = None,
        **knobs: Any,
    ) -> None:
        self.log: list[tuple[str, object]] = [] if results is None else results.log
        self.tasks = MemoryTaskSource(self.log)
        self.results = results or MemoryResultSink(self.log, delay_s=publish_s)
        self.reports: MemoryTable[NodeReport] = MemoryTable("node-states")
        self.strategy = strategy
        settings = ProviderSettings(
            provider_id="provider-test", poll_timeout_ms=1, idle_round_s=0.01, **knobs
        )
        nodes = NodeView(self.reports, stale_s=60.0)
        journal: MemoryTable[JournalRecord] = MemoryTable("journal")
        self.dispatcher = Dispatcher(
            self.tasks,
            self.results,
            strategy,
            nodes,
            self._node_client,
            handlers,
            JournalPruner(journal),
            settings,
            recycle_requests,
            max_result_bytes=max_result_bytes,
            opener=opener,
        )

    @staticmethod
    def _node_client(url: str) -> NodeClient:
        return FakeNode(url)

    async def add_node(self, node_id: str, load: float = 0.1, **fields: Any) -> None:
        """Report the node (memory and CPU at `load` unless `fields` say otherwise), sampled now."""
        report = NodeReport(
            node_id=node_id,
            rpc_url=f"http://{node_id}",
            **{"memory": load, "cpu": load, **fields},
        )
        await self.reports.put(node_id, report)

    def submit(self, task: TaskMessage, partition: TopicPartition = READS) -> TaskMessage:
        self.tasks.add(partition, encode(task))
        return task

    @contextlib.asynccontextmanager
    async def running(self) -> AsyncIterator[None]:
        """The loop runs in its own task inside the block, and is stopped at its end."""
        stop = asyncio.Event()
        loop = asyncio.create_task(self.dispatcher.run(stop))
        try:
            yield
        finally:
            stop.set()
            await loop

    async def run_until(self, done: Callable[[], bool]) -> None:
        """Run the loop until `done()` holds (or fail after TIMEOUT_S), then stop it."""
        async with self.running():
            await until(done)

    def result_of(self, task: TaskMessage) -> ResultMessage | None:
        found = [r for r in self.results.results if r.task_id == task.task_id]
        return found[-1] if found else None


async def _block_number(job: Job) -> dict[str, Any]:
    return {"block_number": 7, "node": job.node_id}


READ_HANDLERS: dict[str, Handler] = {"chain.block_number": _block_number}


async def test_a_held_task_is_dispatched_in_a_later_round() -> None:
    """A task the plan holds stays, uncommitted, and goes out when a later plan assigns it."""
    world = World(ScriptedStrategy(hold_rounds=2), READ_HANDLERS)
    await world.add_node("node-1")
    task = world.submit(new_task("chain.block_number", {}))
    await world.run_until(lambda: world.result_of(task) is not None)
    result = world.result_of(task)
    assert result is not None
    assert result.status is TaskStatus.SUCCEEDED
    assert world.strategy.rounds[:3] == [[task.task_id]] * 3


async def test_a_held_task_keeps_its_offset_uncommitted() -> None:
    """While a task is held, the commit point stays at its offset."""
    world = World(ScriptedStrategy(hold_rounds=1_000), READ_HANDLERS)
    await world.add_node("node-1")
    world.submit(new_task("chain.block_number", {}))
    await world.run_until(lambda: len(world.strategy.rounds) >= 3)
    assert world.tasks.committed.get(READS, 0) == 0
    assert world.dispatcher.held == 1


async def test_a_result_is_published_before_its_offset_is_committed() -> None:
    """The commit that passes a task comes after its result, in one log of both."""
    world = World(ScriptedStrategy(), READ_HANDLERS, publish_s=0.05)
    await world.add_node("node-1")
    task = world.submit(new_task("chain.block_number", {}))
    await world.run_until(lambda: world.tasks.committed.get(READS) == 1)
    published = world.log.index(("published", task.task_id))
    committed = world.log.index(("committed", (READS, 1)))
    assert published < committed


async def test_an_unknown_operation_is_reported_failed_and_committed() -> None:
    """A task naming no operation gets a failed result and its offset is committed."""
    world = World(ScriptedStrategy(), READ_HANDLERS)
    await world.add_node("node-1")
    task = world.submit(TaskMessage(operation="chain.no_such_thing"))
    await world.run_until(lambda: world.tasks.committed.get(READS) == 1)
    result = world.result_of(task)
    assert result is not None
    assert result.status is TaskStatus.FAILED
    assert result.error is not None
    assert result.error.code == "unknown_operation"


async def test_a_malformed_record_is_skipped_and_committed() -> None:
    """A record that is no task message is passed over, not retried forever."""
    world = World(ScriptedStrategy(), READ_HANDLERS)
    await world.add_node("node-1")
    world.tasks.add(READS, b"not json")
    await world.run_until(lambda: world.tasks.committed.get(READS) == 1)
    assert world.results.results == []


SEND_ETHER = {"from": "0x" + "11" * 20, "to": "0x" + "22" * 20, "value": 1}


async def _node_after_node_1_fails(
    failure: Exception, heads: tuple[int | None, int | None] = (None, None), write: bool = False
) -> ResultMessage:
    """The result of a read (or a write) the plan sends to node-1, whose handler raises
    `failure` there; `heads`: the blocks node-1 and node-2 report."""
    operation = "eth.send" if write else "chain.block_number"

    async def node_1_fails(job: Job) -> dict[str, Any]:
        if job.node_id == "node-1":
            raise failure
        return await _block_number(job)

    world = World(ScriptedStrategy(node="node-1"), {operation: node_1_fails})
    await world.add_node("node-1", block=heads[0])
    await world.add_node("node-2", load=0.5, block=heads[1])
    if write:
        task = world.submit(new_task(operation, SEND_ETHER), WRITES)
    else:
        task = world.submit(new_task(operation, {}))
    await world.run_until(lambda: world.result_of(task) is not None)
    result = world.result_of(task)
    assert result is not None
    return result


async def test_a_node_that_does_not_answer_moves_the_task_to_the_next_node() -> None:
    """A read whose node is unreachable runs on the next routable node."""
    unreachable = NodeUnreachableError("ClientConnectorError", "connection refused")
    result = await _node_after_node_1_fails(unreachable)
    assert result.status is TaskStatus.SUCCEEDED
    assert result.node == "node-2"


async def test_a_node_behind_moves_the_task_to_the_next_node() -> None:
    """A read whose node says it is behind (node_behind) runs on the next routable node."""
    behind = NodeBehindError("node-1 has not seen the transaction yet")
    result = await _node_after_node_1_fails(behind)
    assert result.status is TaskStatus.SUCCEEDED
    assert result.node == "node-2"


async def test_not_found_on_a_node_behind_is_asked_again_at_the_head() -> None:
    """A read answered "not found" by a node behind the highest head runs on a node at it."""
    result = await _node_after_node_1_fails(NotFoundError("no receipt"), heads=(10, 12))
    assert result.status is TaskStatus.SUCCEEDED
    assert result.node == "node-2"


async def test_not_found_on_a_node_at_the_head_is_the_answer() -> None:
    """A node at the highest head known has the last word: its "not found" is the result."""
    result = await _node_after_node_1_fails(NotFoundError("no receipt"), heads=(12, 12))
    assert result.status is TaskStatus.FAILED
    assert result.error is not None
    assert result.error.code == "not_found"
    assert result.node == "node-1"


async def test_insufficient_funds_on_a_node_behind_is_asked_again_at_the_head() -> None:
    """A write refused for funds by a node behind the highest head (the sender's funding may
    be in a block it lacks) runs again on a node at that head."""
    refused = InsufficientFundsError("insufficient funds for gas * price + value: balance 0")
    result = await _node_after_node_1_fails(refused, heads=(10, 12), write=True)
    assert result.status is TaskStatus.SUCCEEDED
    assert result.node == "node-2"


async def test_insufficient_funds_on_a_node_at_the_head_is_the_answer() -> None:
    """A sender that cannot pay on a node at the highest head known is refused, not retried."""
    refused = InsufficientFundsError("insufficient funds for gas * price + value: balance 0")
    result = await _node_after_node_1_fails(refused, heads=(12, 12), write=True)
    assert result.error is not None
    assert (result.error.code, result.node) == ("insufficient_funds", "node-1")


async def test_not_found_for_a_write_on_a_node_behind_is_the_answer() -> None:
    """Only reads are asked again after "not found": a write's "not found" stands."""
    result = await _node_after_node_1_fails(NotFoundError("no such project"), (10, 12), write=True)
    assert result.error is not None
    assert (result.error.code, result.node) == ("not_found", "node-1")


async def test_no_node_answering_reports_the_task_failed_retriable() -> None:
    """When every node tried is unreachable, the task fails as node_unavailable."""

    async def unreachable(job: Job) -> dict[str, Any]:
        raise NodeUnreachableError("TimeoutError", "")

    world = World(ScriptedStrategy(), {"chain.block_number": unreachable})
    await world.add_node("node-1")
    await world.add_node("node-2")
    task = world.submit(new_task("chain.block_number", {}))
    await world.run_until(lambda: world.result_of(task) is not None)
    result = world.result_of(task)
    assert result is not None
    assert result.error is not None
    assert (result.error.code, result.error.retriable) == ("node_unavailable", True)


async def test_the_safety_valve_sends_reads_out_after_max_pause() -> None:
    """While the plan pauses, reads go to the best node once max_pause has passed; writes wait."""
    world = World(ScriptedStrategy(paused=True), READ_HANDLERS, max_pause_s=0.2)
    await world.add_node("node-1")
    read = world.submit(new_task("chain.block_number", {}))
    write = new_task("eth.send", {"from": "0x" + "11" * 20, "to": "0x" + "22" * 20, "value": 1})
    world.submit(write, WRITES)
    started = asyncio.get_running_loop().time()
    await world.run_until(lambda: world.result_of(read) is not None)
    waited = asyncio.get_running_loop().time() - started
    assert waited >= 0.2
    assert world.result_of(write) is None
    assert world.dispatcher.held == 1


async def test_a_task_awaiting_only_the_chain_no_longer_counts_in_flight_on_its_node() -> None:
    """After a handler says its node work is done (a receipt is awaited), the node's count drops."""
    mined = asyncio.Event()

    async def send_then_await_receipt(job: Job) -> dict[str, Any]:
        job.node_done()
        await mined.wait()
        return {"status": 1}

    world = World(ScriptedStrategy(), {"chain.block_number": send_then_await_receipt})
    await world.add_node("node-1")
    task = world.submit(new_task("chain.block_number", {}))
    async with world.running():
        await until(lambda: world.dispatcher.running == 1)
        assert world.dispatcher.inflight["node-1"] == 0
        mined.set()
        await until(lambda: world.result_of(task) is not None)
    assert world.dispatcher.inflight["node-1"] == 0


async def test_a_task_awaiting_only_the_chain_holds_no_execution_slot() -> None:
    """With one slot, a second task runs while the first waits for its block."""
    mined = asyncio.Event()

    async def send_then_await_receipt(job: Job) -> dict[str, Any]:
        job.node_done()
        await mined.wait()
        return {"status": 1}

    handlers: dict[str, Handler] = {
        "chain.block_number": send_then_await_receipt,
        "chain.gas_price": _block_number,
    }
    world = World(ScriptedStrategy(), handlers, concurrency=1)
    await world.add_node("node-1")
    waiting = world.submit(new_task("chain.block_number", {}))
    async with world.running():
        await until(lambda: world.dispatcher.running == 1)
        other = world.submit(new_task("chain.gas_price", {}))
        await until(lambda: world.result_of(other) is not None)
        assert world.result_of(waiting) is None
        mined.set()
        await until(lambda: world.result_of(waiting) is not None)


async def test_a_task_counts_in_flight_on_its_node_until_its_node_work_is_done() -> None:
    """A running task whose handler has not released its node is counted on that node."""
    answered = asyncio.Event()

    async def slow_read(job: Job) -> dict[str, Any]:
        await answered.wait()
        return await _block_number(job)

    world = World(ScriptedStrategy(), {"chain.block_number": slow_read})
    await world.add_node("node-1")
    task = world.submit(new_task("chain.block_number", {}))
    async with world.running():
        await until(lambda: world.dispatcher.running == 1)
        assert world.dispatcher.inflight["node-1"] == 1
        answered.set()
        await until(lambda: world.result_of(task) is not None)
    assert world.dispatcher.inflight["node-1"] == 0


async def _unlocked(job: Job) -> dict[str, Any]:
    return {"unlocked": True, "node": job.node_id}


def _dispatched(node: str, zone: str, task_class: str) -> float:
    labels = {"node": node, "zone": zone, "task_class": task_class}
    return REGISTRY.get_sample_value("ethgw_provider_dispatched_total", labels) or 0.0


async def test_each_dispatch_is_counted_by_the_nodes_zone_and_the_tasks_class() -> None:
    """A read sent to the zone II node and a write sent to the zone I node each add one to
    ethgw_provider_dispatched_total with that node, its zone and the task's class."""
    handlers: dict[str, Handler] = {**READ_HANDLERS, "account.unlock": _unlocked}
    world = World(LBHScheduler(dis_avemin=0.2, dis_avemax=1.0, delta=0.0), handlers)
    await world.add_node("node-a", load=0.1)  # d 0.14: zone I
    await world.add_node("node-b", load=0.5)  # d 0.71: zone II
    before = {
        ("node-b", "II", "RT"): _dispatched("node-b", "II", "RT"),
        ("node-a", "I", "MAT"): _dispatched("node-a", "I", "MAT"),
    }
    read = world.submit(new_task("chain.block_number", {}))
    unlock = {"address": "0x" + "11" * 20, "password": "a long password"}
    write = world.submit(new_task("account.unlock", unlock), WRITES)
    await world.run_until(lambda: None not in (world.result_of(read), world.result_of(write)))
    after = {key: _dispatched(*key) for key in before}
    assert {key: after[key] - before[key] for key in before} == {key: 1.0 for key in before}


async def test_the_dispatch_counts_read_back_from_the_metrics_page() -> None:
    """dispatched_by_placement reads the counter's (node, zone, class) counts off /metrics."""
    world = World(LBHScheduler(dis_avemin=0.2, dis_avemax=1.0), READ_HANDLERS)
    await world.add_node("node-c", load=0.5)  # zone II, where reads go first
    await world.add_node("node-d", load=0.1)  # zone I: keeps LBH >= 0
    read = world.submit(new_task("chain.block_number", {}))
    await world.run_until(lambda: world.result_of(read) is not None)
    counts = dispatched_by_placement(generate_latest(REGISTRY).decode())
    assert counts[("node-c", "II", "RT")] == _dispatched("node-c", "II", "RT") >= 1


async def _password_seen(job: Job) -> dict[str, Any]:
    return {"password": getattr(job.params, "password", None)}


async def test_a_sealed_password_reaches_the_handler_opened(tmp_path: Path) -> None:
    """A task sealed for the providers runs with its password opened."""
    folder = ensure_sealing_keys(tmp_path / "sealing")
    handlers: dict[str, Handler] = {**READ_HANDLERS, "account.create": _password_seen}
    world = World(ScriptedStrategy(), handlers, opener=TaskOpener.of_folder(folder))
    await world.add_node("node-1")
    task = TaskSealer.of_folder(folder).seal_task(new_task("account.create", {"password": "p" * 9}))
    world.submit(task, WRITES)
    await world.run_until(lambda: world.result_of(task) is not None)
    result = world.result_of(task)
    assert result is not None
    assert result.data == {"password": "p" * 9}


async def test_a_password_in_clear_fails_its_task_and_runs_nothing(tmp_path: Path) -> None:
    """A task carrying its password in clear ends failed, invalid_params on `password`,
    without its handler running."""
    folder = ensure_sealing_keys(tmp_path / "sealing")
    ran: list[Job] = []

    async def create(job: Job) -> dict[str, Any]:
        ran.append(job)
        return {}

    handlers: dict[str, Handler] = {**READ_HANDLERS, "account.create": create}
    world = World(ScriptedStrategy(), handlers, opener=TaskOpener.of_folder(folder))
    await world.add_node("node-1")
    task = world.submit(new_task("account.create", {"password": "p" * 9}), WRITES)
    await world.run_until(lambda: world.result_of(task) is not None)
    result = world.result_of(task)
    assert result is not None
    assert result.status is TaskStatus.FAILED
    assert result.error is not None
    assert (result.error.code, result.error.field) == ("invalid_params", "password")
    assert ran == []


class SteadyStream(MemoryTaskSource):
    """Tasks that keep coming: each fetch brings one new task, `count` times, then none."""

    def __init__(self, log: list[tuple[str, object]], count: int) -> None:
        super().__init__(log)
        self.remaining = count

    async def fetch(self, max_records: int, timeout_ms: int) -> list[TaskRecord]:
        await asyncio.sleep(0.002)  # the earlier tasks finish meanwhile, as on a real stream
        if self.remaining > 0:
            self.remaining -= 1
            self.add(READS, encode(new_task("chain.block_number", {})))
        return await super().fetch(max_records, timeout_ms)


async def test_offsets_are_committed_once_tasks_stop_coming_not_in_every_round() -> None:
    """While every fetch brings a task, nothing is committed before commit_interval_s; the
    first empty fetch commits every finished task at once."""
    world = World(ScriptedStrategy(), READ_HANDLERS, commit_interval_s=60.0)
    world.tasks = SteadyStream(world.log, count=30)
    world.dispatcher._tasks = world.tasks  # the stream in place of the plain source
    await world.add_node("node-1")
    await world.run_until(lambda: world.tasks.committed.get(READS) == 30)
    commits = [entry for entry in world.log if entry[0] == "committed"]
    assert commits == [("committed", (READS, 30))]
