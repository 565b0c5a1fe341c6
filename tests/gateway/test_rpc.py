"""JSON-RPC request validation and the method allowlist (no server)."""

from __future__ import annotations

import json
from typing import Any

import pytest

from ethgw_wire.operations import RPC_READ_METHODS
from gateway.jsonrpc import (
    INTERNAL_ERROR,
    INVALID_PARAMS,
    INVALID_REQUEST,
    METHOD_NOT_FOUND,
    PARSE_ERROR,
    SERVER_ERROR,
    Allowlist,
    RpcCall,
    RpcFailure,
    RpcRequestError,
    check_call,
    parse_request,
    upstream_response,
)

ALLOW = Allowlist(RPC_READ_METHODS)


def _call(**fields: Any) -> dict[str, Any]:
    return {"jsonrpc": "2.0", "id": 1, "method": "eth_blockNumber", "params": [], **fields}


def _error(item: RpcCall | RpcFailure) -> dict[str, Any]:
    assert isinstance(item, RpcFailure), item
    error: dict[str, Any] = item.response["error"]
    return error


def test_read_method_goes_to_read_instances() -> None:
    """An allowlisted read becomes a call for a read instance, id and params kept."""
    item = check_call(_call(method="eth_getBalance", params=["0x0", "latest"], id="a"), ALLOW)
    assert item == RpcCall("a", "eth_getBalance", ["0x0", "latest"], "read", False)


def test_raw_transaction_goes_to_write_instances() -> None:
    """eth_sendRawTransaction is the one write the pass-through allows."""
    item = check_call(_call(method="eth_sendRawTransaction", params=["0x00"]), ALLOW)
    assert isinstance(item, RpcCall)
    assert item.kind == "write"


@pytest.mark.parametrize(
    "method",
    ["personal_unlockAccount", "admin_addPeer", "miner_start", "debug_traceTransaction"],
)
def test_management_namespaces_are_denied_by_name(method: str) -> None:
    """personal_, admin_, miner_, debug_ are refused with -32601 naming the namespace."""
    error = _error(check_call(_call(method=method), ALLOW))
    assert error["code"] == METHOD_NOT_FOUND
    assert f"{method.split('_')[0]}_ namespace" in error["message"]


@pytest.mark.parametrize("method", ["eth_sendTransaction", "eth_sign", "eth_accounts", "nope"])
def test_methods_off_the_allowlist_are_denied(method: str) -> None:
    """Anything not allowlisted (signing by the node included) is -32601."""
    error = _error(check_call(_call(method=method), ALLOW))
    assert error["code"] == METHOD_NOT_FOUND
    assert method in error["message"]


@pytest.mark.parametrize(
    "body",
    [
        b"{",
        b"",
        b"\xff\xfe",
        b"[" * 100_000 + b"]" * 100_000,
        b'{"jsonrpc": "2.0", "id": NaN, "method": "eth_chainId"}',
    ],
)
def test_unparsable_body_is_a_parse_error(body: bytes) -> None:
    """Bad JSON (deep nesting and NaN included) is one -32700 response with a null id."""
    with pytest.raises(RpcRequestError) as raised:
        parse_request(body, ALLOW, batch_limit=50)
    assert raised.value.response["error"]["code"] == PARSE_ERROR
    assert raised.value.response["id"] is None


@pytest.mark.parametrize(
    "call",
    [
        _call(jsonrpc="1.0"),
        {"id": 1, "method": "eth_blockNumber"},
        _call(method=5),
        _call(method=""),
        _call(method="eth_" + "x" * 100),
        _call(params="0x0"),
        "eth_blockNumber",
        7,
    ],
)
def test_malformed_call_is_an_invalid_request(call: Any) -> None:
    """A call without jsonrpc 2.0, with a bad method or params, or not an object: -32600."""
    assert _error(check_call(call, ALLOW))["code"] == INVALID_REQUEST


def test_bad_id_type_gets_a_null_id() -> None:
    """An id that is neither string, number nor null cannot be echoed: -32600, id null."""
    item = check_call(_call(id={"x": 1}), ALLOW)
    assert isinstance(item, RpcFailure)
    assert item.response["id"] is None
    assert item.response["error"]["code"] == INVALID_REQUEST


def test_named_params_are_invalid_params() -> None:
    """Ethereum methods take positional params: an object is -32602."""
    assert _error(check_call(_call(params={"a": 1}), ALLOW))["code"] == INVALID_PARAMS


def test_too_many_params_are_invalid_params() -> None:
    """More than 16 params is -32602."""
    assert _error(check_call(_call(params=list(range(17))), ALLOW))["code"] == INVALID_PARAMS


def test_empty_batch_is_one_invalid_request() -> None:
    """[] is answered with a single -32600, not an empty array."""
    with pytest.raises(RpcRequestError) as raised:
        parse_request(b"[]", ALLOW, batch_limit=50)
    assert raised.value.response["error"]["code"] == INVALID_REQUEST


def test_batch_over_the_limit_is_refused_whole() -> None:
    """A batch larger than the limit is one -32600 naming the limit."""
    body = json.dumps([_call(id=i) for i in range(51)]).encode()
    with pytest.raises(RpcRequestError) as raised:
        parse_request(body, ALLOW, batch_limit=50)
    assert "limit of 50" in raised.value.response["error"]["message"]


def test_batch_items_keep_their_order_and_own_errors() -> None:
    """Each item of a batch is judged alone, in order."""
    body = json.dumps([_call(id=1), _call(id=2, method="miner_start"), 3]).encode()
    parsed = parse_request(body, ALLOW, batch_limit=50)
    assert parsed.batch
    assert isinstance(parsed.items[0], RpcCall)
    assert _error(parsed.items[1])["code"] == METHOD_NOT_FOUND
    assert _error(parsed.items[2])["code"] == INVALID_REQUEST


def test_call_without_id_is_a_notification() -> None:
    """A call with no id member is a notification (no response owed)."""
    call = _call()
    del call["id"]
    item = check_call(call, ALLOW)
    assert isinstance(item, RpcCall)
    assert item.notification


def test_an_invalid_request_without_id_is_answered_not_taken_for_a_notification() -> None:
    """{} and other objects without id that are no Request (no "jsonrpc": "2.0", no method)
    get -32600 with id null: only a valid Request without id is a notification."""
    for obj in ({}, {"jsonrpc": "2.0"}, {"method": "eth_blockNumber"}):
        item = check_call(obj, ALLOW)
        assert isinstance(item, RpcFailure)
        assert not item.notification
        assert _error(item)["code"] == INVALID_REQUEST
        assert item.response["id"] is None


def test_upstream_response_gets_the_callers_id() -> None:
    """The service's JSON-RPC answer is returned under the caller's id."""
    call = RpcCall("abc", "eth_blockNumber", [], "read", False)
    answer = upstream_response(call, 200, {"jsonrpc": "2.0", "id": 99, "result": "0x10"})
    assert answer == {"jsonrpc": "2.0", "id": "abc", "result": "0x10"}


def test_upstream_envelope_becomes_an_error_object() -> None:
    """A service envelope refusing the call is turned into a JSON-RPC error."""
    call = RpcCall(1, "eth_getBalance", ["x"], "read", False)
    invalid = {
        "status": 422,
        "message": "bad",
        "error": {"code": "invalid_params", "reason": "bad"},
    }
    assert upstream_response(call, 422, invalid)["error"]["code"] == INVALID_PARAMS
    pending = {"status": 202, "message": "accepted", "task_id": "t1"}
    error = upstream_response(call, 202, pending)["error"]
    assert error["code"] == SERVER_ERROR
    assert error["data"]["task_id"] == "t1"
    assert upstream_response(call, 200, ["junk"])["error"]["code"] == INTERNAL_ERROR
