"""JSON-RPC calls whose params do not fit their method: -32602 naming the param, from
the service itself (in this process, with a fake task runner), and no task."""

from __future__ import annotations

from typing import Any

import pytest

from ethgw_wire.operations import RPC_READ_METHODS
from ethgw_wire.rpc_params import SIGNATURES
from read_service.app import create_app as create_read_app
from read_service.config import ReadServiceSettings
from tests.services.fakes import FakeTasks, serving
from tests.services.test_write_service import SIGNED
from write_service.app import create_app as create_write_app
from write_service.config import WriteServiceSettings


async def _write_call(params: Any, tasks: FakeTasks) -> dict[str, Any]:
    call = {"jsonrpc": "2.0", "id": 9, "method": "eth_sendRawTransaction", "params": params}
    async with serving(create_write_app(WriteServiceSettings()), tasks) as client:
        response = await client.post("/api/v1/rpc", json=call)
    assert response.status_code == 200
    body: dict[str, Any] = response.json()
    return body


async def _read_call(method: str, params: Any, tasks: FakeTasks) -> dict[str, Any]:
    call = {"jsonrpc": "2.0", "id": 9, "method": method, "params": params}
    async with serving(create_read_app(ReadServiceSettings()), tasks) as client:
        response = await client.post("/api/v1/rpc", json=call)
    assert response.status_code == 200
    body: dict[str, Any] = response.json()
    return body


@pytest.mark.parametrize(
    ("raw", "reason"),
    [
        ("0x", "is empty"),
        ("0xc0", "is not a signed transaction"),
        ("0x00", "is not a signed transaction"),
        ("0xdeadbeef", "is not a signed transaction"),
        (SIGNED[:-2], "is not a signed transaction"),
        ("deadbeef", "must be 0x-prefixed hex"),
        ("0xabc", "must be 0x-prefixed hex"),
        (12, "must be 0x-prefixed hex"),
        (None, "must be 0x-prefixed hex"),
        ({"raw": SIGNED}, "must be 0x-prefixed hex"),
    ],
)
async def test_a_bad_raw_transaction_is_invalid_params_naming_it(raw: Any, reason: str) -> None:
    """Not hex, empty or undecodable: -32602 naming params[0] and why; no task."""
    tasks = FakeTasks()
    body = await _write_call([raw], tasks)
    assert body["id"] == 9
    assert body["error"]["code"] == -32602
    assert "params[0] (signed_transaction)" in body["error"]["message"]
    assert reason in body["error"]["message"]
    assert tasks.ran == []


@pytest.mark.parametrize("params", [[], [SIGNED, SIGNED]])
async def test_a_raw_transaction_with_the_wrong_count_is_invalid_params(params: Any) -> None:
    """No param or two: -32602 saying it takes one; no task."""
    tasks = FakeTasks()
    body = await _write_call(params, tasks)
    assert body["error"]["code"] == -32602
    assert f"takes 1 param (signed_transaction); {len(params)} given" in body["error"]["message"]
    assert tasks.ran == []


@pytest.mark.parametrize(
    ("method", "params", "reason"),
    [
        ("eth_getBalance", ["0x" + "ab" * 20], "takes 2 params (address, block); 1 given"),
        ("eth_blockNumber", [1], "takes 0 params (none); 1 given"),
        ("eth_call", [], "takes 1 to 4 params"),
        ("eth_getBalance", ["0xab", "latest"], "params[0] (address) must be"),
        ("eth_getBalance", ["0x" + "ab" * 20, "soon"], "params[1] (block) must be"),
        ("eth_getBlockByNumber", ["latest", "yes"], "params[1] (full) must be true or false"),
        ("eth_getTransactionReceipt", ["0x12"], "params[0] (transaction_hash) must be"),
        ("eth_getLogs", ["everything"], "params[0] (filter) must be an object"),
        ("eth_call", [[1, 2]], "params[0] (transaction) must be an object"),
    ],
)
async def test_a_read_with_bad_params_is_invalid_params_naming_them(
    method: str, params: list[Any], reason: str
) -> None:
    """A wrong count or a param of the wrong shape: -32602 with the reason; no task."""
    tasks = FakeTasks()
    body = await _read_call(method, params, tasks)
    assert body["error"]["code"] == -32602
    assert reason in body["error"]["message"]
    assert tasks.ran == []


async def test_a_read_with_fitting_params_becomes_a_task() -> None:
    """EIP-1898 block objects and optional params left out pass to the node."""
    tasks = FakeTasks(data="0x1")
    params = [{"to": "0x" + "cd" * 20}, {"blockHash": "0x" + "11" * 32}]
    body = await _read_call("eth_call", params, tasks)
    assert body["result"] == "0x1"
    assert len(tasks.ran) == 1


def test_every_read_method_has_a_signature() -> None:
    """Each JSON-RPC read the platform allows has its params described."""
    assert set(RPC_READ_METHODS) <= set(SIGNATURES)
