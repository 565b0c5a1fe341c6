"""/rpc on real servers: forwarding, batches, refusals as JSON-RPC error objects."""

from __future__ import annotations

import json
from typing import Any

from gateway.jsonrpc import INVALID_REQUEST, METHOD_NOT_FOUND, PARSE_ERROR, SERVER_ERROR
from tests.gateway.conftest import Fakes, Gateway


def _call(method: str = "eth_blockNumber", call_id: Any = 1, params: Any = None) -> dict[str, Any]:
    return {"jsonrpc": "2.0", "id": call_id, "method": method, "params": params or []}


async def test_single_read_goes_to_a_read_instance(wired: Gateway, fakes: Fakes) -> None:
    """A read call is answered by a read instance under the caller's id."""
    async with wired.client() as client:
        answer = await client.post("/rpc", json=_call(call_id="q1"))
    assert answer.status_code == 200
    body = answer.json()
    assert body["id"] == "q1"
    assert body["result"]["instance"].startswith("read-")
    seen = [s for f in (fakes.read_a, fakes.read_b) for s in f.seen]
    assert [s.path for s in seen] == ["/api/v1/rpc"]
    assert json.loads(seen[0].body)["method"] == "eth_blockNumber"


async def test_raw_transaction_goes_to_a_write_instance(wired: Gateway) -> None:
    """eth_sendRawTransaction is forwarded to a write instance."""
    async with wired.client() as client:
        answer = await client.post("/rpc", json=_call("eth_sendRawTransaction", 7, ["0x00"]))
    assert answer.json()["result"]["instance"].startswith("write-")


async def test_batch_answers_in_order(wired: Gateway) -> None:
    """A batch mixing reads, a raw transaction, a denied method and junk answers each in
    the request's order."""
    batch = [
        _call(call_id=1),
        _call("eth_sendRawTransaction", 2, ["0x00"]),
        _call("personal_unlockAccount", 3),
        "junk",
        _call("eth_chainId", 5),
    ]
    async with wired.client() as client:
        answer = await client.post("/rpc", json=batch)
    body = answer.json()
    assert [item["id"] for item in body] == [1, 2, 3, None, 5]
    assert body[0]["result"]["method"] == "eth_blockNumber"
    assert body[1]["result"]["instance"].startswith("write-")
    assert body[2]["error"]["code"] == METHOD_NOT_FOUND
    assert body[3]["error"]["code"] == INVALID_REQUEST
    assert body[4]["result"]["method"] == "eth_chainId"


async def test_denied_method_never_reaches_a_service(wired: Gateway, fakes: Fakes) -> None:
    """A personal_ call is refused by the gateway with -32601; no service sees it."""
    async with wired.client() as client:
        answer = await client.post("/rpc", json=_call("personal_sendTransaction"))
    assert answer.status_code == 200
    assert answer.json()["error"]["code"] == METHOD_NOT_FOUND
    assert "personal_ namespace" in answer.json()["error"]["message"]
    assert fakes.seen_total() == 0


async def test_parse_error(wired: Gateway, fakes: Fakes) -> None:
    """A body that is not JSON is one -32700 error with a null id."""
    async with wired.client() as client:
        answer = await client.post("/rpc", content=b'{"jsonrpc": "2.0", "method"')
    assert answer.json() == {
        "jsonrpc": "2.0",
        "id": None,
        "error": {"code": PARSE_ERROR, "message": "parse error: not JSON"},
    }
    assert fakes.seen_total() == 0


async def test_batch_over_the_limit_is_refused_whole(wired: Gateway, fakes: Fakes) -> None:
    """A batch over rpc_batch_limit (50) is one -32600 error; nothing is forwarded."""
    async with wired.client() as client:
        answer = await client.post("/rpc", json=[_call(call_id=i) for i in range(51)])
    assert answer.json()["error"]["code"] == INVALID_REQUEST
    assert "limit of 50" in answer.json()["error"]["message"]
    assert fakes.seen_total() == 0


async def test_rpc_needs_an_api_key(wired: Gateway, fakes: Fakes) -> None:
    """/rpc without a key is 401 with a JSON-RPC error object a web3 client can show."""
    async with wired.client(None) as client:
        answer = await client.post("/rpc", json=_call())
    assert answer.status_code == 401
    body = answer.json()
    assert body["jsonrpc"] == "2.0"
    assert body["error"]["data"]["code"] == "missing_api_key"
    assert fakes.seen_total() == 0


async def test_no_instance_is_a_retriable_server_error(gateway: Gateway) -> None:
    """Without a read instance a read call gets -32000 marked retriable."""
    async with gateway.client() as client:
        answer = await client.post("/rpc", json=_call())
    error = answer.json()["error"]
    assert error["code"] == SERVER_ERROR
    assert error["data"]["retriable"] is True


async def test_notifications_get_no_response(wired: Gateway) -> None:
    """A request of notifications only (no ids) is answered 204 without a body."""
    notification = {"jsonrpc": "2.0", "method": "eth_blockNumber"}
    async with wired.client() as client:
        answer = await client.post("/rpc", json=[notification, notification])
    assert answer.status_code == 204
    assert answer.content == b""
