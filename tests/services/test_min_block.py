"""X-Ethgw-Min-Block at the services: checked, then carried on the task as min_block."""

from __future__ import annotations

from ethgw_wire.http_api import MIN_BLOCK_HEADER
from ethgw_wire.node_reports import Lifecycle
from read_service.app import create_app
from read_service.config import ReadServiceSettings
from tests.services.fakes import FakeNodes, FakeTasks, node_report, serving

HEAD = 100
CALL = {"jsonrpc": "2.0", "id": 1, "method": "eth_blockNumber", "params": []}


def _nodes() -> FakeNodes:
    return FakeNodes([node_report("node-1", Lifecycle.UP).model_copy(update={"block": HEAD})])


async def test_the_header_becomes_the_tasks_min_block() -> None:
    """A decimal or hex block in the header is the task's min_block, REST and JSON-RPC."""
    tasks = FakeTasks(data={"block_number": HEAD})
    async with serving(create_app(ReadServiceSettings()), tasks, _nodes()) as client:
        await client.get("/api/v1/conn/blockNum", headers={MIN_BLOCK_HEADER: "99"})
        await client.post("/api/v1/rpc", json=CALL, headers={MIN_BLOCK_HEADER: "0x64"})
        await client.get("/api/v1/conn/blockNum")
    assert [task.min_block for task in tasks.ran] == [99, 100, None]


async def test_a_header_that_is_no_block_number_runs_no_task() -> None:
    """ "soon", a negative number or one past the head by more than the margin: 422 naming the
    header (a JSON-RPC error on /rpc), and no task runs."""
    tasks = FakeTasks()
    async with serving(create_app(ReadServiceSettings()), tasks, _nodes()) as client:
        for value in ("soon", "-1", "0x", str(2**64), str(HEAD + 1000)):
            answer = await client.get("/api/v1/conn/blockNum", headers={MIN_BLOCK_HEADER: value})
            assert answer.status_code == 422, value
            assert answer.json()["error"]["field"] == MIN_BLOCK_HEADER
            rpc = await client.post("/api/v1/rpc", json=CALL, headers={MIN_BLOCK_HEADER: value})
            assert MIN_BLOCK_HEADER in rpc.json()["error"]["message"], value
    assert tasks.ran == []
