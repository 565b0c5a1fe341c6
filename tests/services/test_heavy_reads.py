"""The read service's caps on what one JSON-RPC read may ask, and how a result too large
is answered (in this process, with a fake task runner)."""

from __future__ import annotations

from typing import Any

from ethgw_wire.errors import ResultTooLargeError
from ethgw_wire.node_reports import Lifecycle
from read_service.app import create_app
from read_service.config import ReadServiceSettings
from tests.services.fakes import FakeNodes, FakeTasks, node_report, serving

SETTINGS = ReadServiceSettings(logs_max_blocks=10, call_max_gas=100_000)


async def _call(method: str, params: Any, tasks: FakeTasks, head: int | None = None) -> Any:
    report = node_report("node-1", Lifecycle.UP).model_copy(update={"block": head})
    call = {"jsonrpc": "2.0", "id": 3, "method": method, "params": params}
    async with serving(create_app(SETTINGS), tasks, FakeNodes([report])) as client:
        answer = await client.post("/api/v1/rpc", json=call)
    assert answer.status_code == 200
    return answer.json()


async def test_a_wide_get_logs_is_refused_before_any_task() -> None:
    """eth_getLogs over logs_max_blocks: -32602 naming the filter and the cap; no task."""
    tasks = FakeTasks()
    body = await _call("eth_getLogs", [{"fromBlock": "0x0", "toBlock": "0xa"}], tasks)
    assert body["error"]["code"] == -32602
    assert "params[0] (filter) spans 11 blocks" in body["error"]["message"]
    assert "the cap is 10 blocks" in body["error"]["message"]
    assert tasks.ran == []


async def test_the_head_of_the_node_reports_measures_a_tagged_range() -> None:
    """fromBlock "earliest" to "latest" spans the head the node reports give: refused at
    head 10 (11 blocks), run at head 9."""
    refused, ran = FakeTasks(), FakeTasks()
    wide = [{"fromBlock": "earliest", "toBlock": "latest"}]
    body = await _call("eth_getLogs", wide, refused, head=10)
    assert "spans 11 blocks (0 to 10)" in body["error"]["message"]
    await _call("eth_getLogs", wide, ran, head=9)
    assert len(ran.ran) == 1


async def test_a_call_over_the_gas_cap_is_refused_before_any_task() -> None:
    """eth_call with more gas than call_max_gas: -32602 naming the transaction; no task."""
    tasks = FakeTasks()
    body = await _call("eth_call", [{"gas": hex(100_001)}, "latest"], tasks)
    assert body["error"]["code"] == -32602
    assert "params[0] (transaction) gas 100001 exceeds the cap" in body["error"]["message"]
    assert tasks.ran == []


async def test_a_call_without_gas_runs_with_the_cap() -> None:
    """eth_call naming no gas becomes a task whose call carries call_max_gas."""
    tasks = FakeTasks(data="0x")
    await _call("eth_call", [{"to": "0x" + "22" * 20}, "latest"], tasks)
    assert tasks.ran[0].params["params"][0]["gas"] == hex(100_000)


async def test_a_result_too_large_is_a_limit_exceeded_error_with_its_code() -> None:
    """A task failed as result_too_large answers -32005 with the reason and the code."""
    error = ResultTooLargeError("the result is 2200000 bytes, over the limit").info()
    tasks = FakeTasks(outcome="failed", error=error)
    body = await _call("eth_call", [{"to": "0x" + "22" * 20}], tasks)
    assert body["error"]["code"] == -32005
    assert body["error"]["message"].startswith("the result is 2200000 bytes")
    assert body["error"]["data"] == {"code": "result_too_large", "retriable": False}
