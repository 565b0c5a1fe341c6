"""Read your writes in the round loop: a read naming a block goes to a node that has it, or
waits for one. The nodes are fakes with a head; the cache and the node view are the real ones
(the real chain: tests/pipeline/test_read_your_writes.py)."""

from __future__ import annotations

import asyncio
from collections.abc import Sequence
from typing import Any

from ethgw_wire.errors import NotFoundError
from ethgw_wire.messages import ResultMessage, TaskMessage, TaskStatus
from ethgw_wire.node_reports import NodeReport
from ethgw_wire.operations import new_task
from ethgw_wire.topic_mirror import MemoryTable
from provider.config import ProviderSettings
from provider.dispatcher import Dispatcher
from provider.freshness import SeenMined
from provider.handlers import Handler, Job
from provider.journal_pruning import JournalPruner
from provider.nodes import NodeView
from provider.read_cache import CachingClients, ReadCache
from provider.task_stream import MemoryResultSink, MemoryTaskSource
from provider.transactions import JournalRecord
from tests.provider.fake_node import FakeNode
from tests.provider.test_dispatcher import READS, ScriptedStrategy, until

TX = "0x" + "ab" * 32
MINED = 50


class HeadNode(FakeNode):
    """A node at `head`: it has the receipt of TX once its head reaches MINED."""

    def __init__(self, name: str, head: int) -> None:
        super().__init__(name)
        self.head = head

    async def request(self, method: str, params: Sequence[Any]) -> Any:
        if method == "eth_blockNumber":
            return hex(self.head)
        if method == "eth_getTransactionReceipt":
            if self.head < MINED:
                return None
            return {"transactionHash": TX, "blockHash": "0x" + "cd" * 32, "blockNumber": hex(MINED)}
        return await super().request(method, params)


async def _receipt(job: Job) -> dict[str, Any]:
    receipt = await job.node.request("eth_getTransactionReceipt", [TX])
    if receipt is None:
        raise NotFoundError(f"no receipt for {TX}")
    return {"node": job.node_id}


HANDLERS: dict[str, Handler] = {"tx.receipt": _receipt, "rpc.call": _receipt}


class Cluster:
    """node-0 behind (the scheduler's choice) and node-1; both reported below MINED."""

    def __init__(self, node1_head: int, wait_s: float = 5.0) -> None:
        self.nodes = {
            "http://node-0": HeadNode("node-0", 10),
            "http://node-1": HeadNode("node-1", node1_head),
        }
        self.reports: MemoryTable[NodeReport] = MemoryTable("node-states")
        self.seen = SeenMined(100)
        self.seen.saw_transaction(TX, None, MINED)
        self.tasks = MemoryTaskSource()
        self.results = MemoryResultSink()
        view = NodeView(self.reports, stale_s=60.0)
        clients = CachingClients(self.nodes.__getitem__, ReadCache(100, 6), self.seen, view)
        settings = ProviderSettings(provider_id="p", poll_timeout_ms=1, idle_round_s=0.01)
        self.dispatcher = Dispatcher(
            self.tasks,
            self.results,
            ScriptedStrategy(node="node-0"),
            view,
            clients.get,
            HANDLERS,
            JournalPruner(MemoryTable[JournalRecord]("journal")),
            settings,
            max_result_bytes=512 * 1024,
            seen=self.seen,
            min_block_wait_s=wait_s,
        )

    async def report(self) -> None:
        for name in ("node-0", "node-1"):
            report = NodeReport(
                node_id=name, rpc_url=f"http://{name}", memory=0.1, cpu=0.1, block=10
            )
            await self.reports.put(name, report)

    async def run(self, task: TaskMessage) -> ResultMessage:
        await self.report()
        self.tasks.add(READS, task.model_dump_json().encode())
        stop = asyncio.Event()
        loop = asyncio.create_task(self.dispatcher.run(stop))
        try:
            await until(lambda: any(r.task_id == task.task_id for r in self.results.results))
        finally:
            stop.set()
            await loop
        return next(r for r in self.results.results if r.task_id == task.task_id)


async def test_a_receipt_seen_mined_is_read_on_the_node_that_has_it() -> None:
    """The scheduler picks node-0, behind; node-1 has the block (its answer says so): the
    read runs there."""
    cluster = Cluster(node1_head=MINED)
    result = await cluster.run(new_task("tx.receipt", {"tx_hash": TX}))
    assert result.status is TaskStatus.SUCCEEDED
    assert result.data == {"node": "node-1"}


async def test_a_json_rpc_receipt_read_is_routed_the_same_way() -> None:
    """eth_getTransactionReceipt through rpc.call needs the block too."""
    cluster = Cluster(node1_head=MINED)
    call = {"method": "eth_getTransactionReceipt", "params": [TX]}
    result = await cluster.run(new_task("rpc.call", call))
    assert result.data == {"node": "node-1"}


async def test_a_read_waits_until_a_node_reaches_the_block() -> None:
    """No node has the block yet: the read waits, and runs once node-1 imports it."""
    cluster = Cluster(node1_head=MINED - 1)

    async def import_later() -> None:
        await asyncio.sleep(0.5)
        cluster.nodes["http://node-1"].head = MINED

    importing = asyncio.create_task(import_later())
    result = await cluster.run(new_task("tx.receipt", {"tx_hash": TX}))
    await importing
    assert result.data == {"node": "node-1"}


async def test_a_read_whose_block_never_comes_runs_where_it_was_put() -> None:
    """After the wait, the read runs on the scheduler's node and may answer not found."""
    cluster = Cluster(node1_head=MINED - 1, wait_s=0.3)
    result = await cluster.run(new_task("tx.receipt", {"tx_hash": TX}))
    assert result.status is TaskStatus.FAILED
    assert result.error is not None
    assert result.error.code == "not_found"
    assert result.node == "node-0"


async def test_a_client_min_block_is_honoured_for_a_read_naming_nothing() -> None:
    """A task with min_block runs on a node at that block even when it names no block."""
    cluster = Cluster(node1_head=MINED)
    task = new_task("tx.receipt", {"tx_hash": "0x" + "ef" * 32}).model_copy(
        update={"min_block": MINED}
    )
    result = await cluster.run(task)
    assert result.node == "node-1"
