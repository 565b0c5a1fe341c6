"""The read service's own routes, in this process with a fake task runner."""

from __future__ import annotations

from read_service.app import create_app
from read_service.config import ReadServiceSettings
from tests.services.fakes import FakeTasks, serving


async def test_a_read_route_answers_its_result_in_the_envelope() -> None:
    """GET blockNum runs chain.block_number and answers 200 with the data, echoing the id."""
    tasks = FakeTasks(data={"block_number": 12})
    async with serving(create_app(ReadServiceSettings()), tasks) as client:
        response = await client.get("/api/v1/conn/blockNum", headers={"X-Request-ID": "r-1"})
    body = response.json()
    assert response.status_code == 200
    assert body["data"] == {"block_number": 12}
    assert body["request_id"] == "r-1"
    assert response.headers["X-Request-ID"] == "r-1"
    assert [task.operation for task in tasks.ran] == ["chain.block_number"]


async def test_the_read_service_serves_no_write_route() -> None:
    """POST /tx/send is not a read route: 404 not_found, and no task runs."""
    tasks = FakeTasks()
    async with serving(create_app(ReadServiceSettings()), tasks) as client:
        response = await client.post("/api/v1/tx/send", json={})
    assert response.status_code == 404
    assert response.json()["error"]["code"] == "not_found"
    assert tasks.ran == []


async def test_a_json_rpc_read_becomes_an_rpc_call_task() -> None:
    """eth_getBalance runs rpc.call with the method and params, and answers the node's result."""
    tasks = FakeTasks(data="0x10")
    params = ["0x" + "ab" * 20, "latest"]
    call = {"jsonrpc": "2.0", "id": 3, "method": "eth_getBalance", "params": params}
    async with serving(create_app(ReadServiceSettings()), tasks) as client:
        response = await client.post("/api/v1/rpc", json=call)
    assert response.json() == {"jsonrpc": "2.0", "id": 3, "result": "0x10"}
    assert tasks.ran[0].operation == "rpc.call"
    assert tasks.ran[0].params == {"method": "eth_getBalance", "params": params}


async def test_a_raw_transaction_is_not_a_read() -> None:
    """eth_sendRawTransaction on the read service is -32601, and no task runs."""
    tasks = FakeTasks()
    call = {"jsonrpc": "2.0", "id": 1, "method": "eth_sendRawTransaction", "params": ["0x00"]}
    async with serving(create_app(ReadServiceSettings()), tasks) as client:
        response = await client.post("/api/v1/rpc", json=call)
    assert response.json()["error"]["code"] == -32601
    assert tasks.ran == []


async def test_healthz_names_the_read_kind() -> None:
    """/healthz says the instance is a read service."""
    async with serving(create_app(ReadServiceSettings()), FakeTasks()) as client:
        response = await client.get("/healthz")
    assert response.json() == {"status": "ok", "kind": "read"}
