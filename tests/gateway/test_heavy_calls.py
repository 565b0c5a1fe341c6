"""Per-key limit on heavy JSON-RPC calls at once: the slots alone, then /rpc on a real
gateway with fake instances (the real stack's test is in tests/front_door)."""

from __future__ import annotations

import json
from typing import Any

from ethgw_wire.operations import RPC_HEAVY_METHODS, RPC_READ_METHODS
from gateway.heavy_calls import HeavyCallSlots
from gateway.jsonrpc import LIMIT_EXCEEDED
from gateway.keys import hash_key
from tests.gateway.conftest import Fakes, Gateway

LIMIT = 4  # GatewaySettings.heavy_calls_per_key's default


def _call(method: str, call_id: int) -> dict[str, Any]:
    return {"jsonrpc": "2.0", "id": call_id, "method": method, "params": [{}, "latest"]}


def _key_id(plaintext: str) -> str:
    return hash_key(plaintext)[:12]


def test_a_key_gets_its_limit_of_slots_and_no_more() -> None:
    """take() grants `per_key` slots to one key, then refuses until one is released."""
    slots = HeavyCallSlots(per_key=2)
    assert [slots.take("a"), slots.take("a"), slots.take("a")] == [True, True, False]
    slots.release("a")
    assert slots.take("a")


def test_one_key_at_its_limit_leaves_another_keys_slots() -> None:
    """A key that used all its slots takes none of another key's."""
    slots = HeavyCallSlots(per_key=1)
    assert slots.take("a")
    assert not slots.take("a")
    assert slots.take("b")
    assert (slots.running("a"), slots.running("b")) == (1, 1)


async def test_a_batch_over_the_limit_runs_the_limit_and_refuses_the_rest(
    wired: Gateway, fakes: Fakes
) -> None:
    """A batch of LIMIT + 3 eth_call: LIMIT are forwarded, 3 answer -32005
    heavy_calls_limited naming the limit; no slot stays taken."""
    batch = [_call("eth_call", n) for n in range(LIMIT + 3)]
    async with wired.client() as client:
        answer = await client.post("/rpc", json=batch)
    assert answer.status_code == 200
    body = answer.json()
    refused = [item for item in body if "error" in item]
    assert [item["id"] for item in refused] == [LIMIT, LIMIT + 1, LIMIT + 2]
    assert {item["error"]["code"] for item in refused} == {LIMIT_EXCEEDED}
    assert {item["error"]["data"]["code"] for item in refused} == {"heavy_calls_limited"}
    assert f"already runs {LIMIT}" in refused[0]["error"]["message"]
    # Besides them, one eth_blockNumber: the head the batch's "latest" calls are pinned to.
    forwarded = [json.loads(seen.body)["method"] for fake in fakes.all() for seen in fake.seen]
    assert forwarded.count("eth_call") == LIMIT
    assert wired.state.heavy_calls.running(_key_id(wired.user_key)) == 0


async def test_a_single_heavy_call_over_the_limit_is_a_429(wired: Gateway, fakes: Fakes) -> None:
    """While a key runs LIMIT heavy calls, its next one is HTTP 429 with -32005 and
    Retry-After; another key's heavy call and the key's light call are forwarded."""
    busy = _key_id(wired.user_key)
    for _ in range(LIMIT):
        assert wired.state.heavy_calls.take(busy)
    try:
        async with wired.client() as client:
            refused = await client.post("/rpc", json=_call("eth_getLogs", 1))
            light = await client.post("/rpc", json=_call("eth_blockNumber", 2))
        async with wired.client("admin") as other:
            served = await other.post("/rpc", json=_call("eth_getLogs", 3))
    finally:
        for _ in range(LIMIT):
            wired.state.heavy_calls.release(busy)
    assert refused.status_code == 429
    assert refused.headers["retry-after"] == "1"
    assert refused.json()["error"]["code"] == LIMIT_EXCEEDED
    assert "result" in light.json()
    assert "result" in served.json()
    assert fakes.seen_total() == 2


def test_the_heavy_methods_are_reads_the_gateway_forwards() -> None:
    """Every heavy method is an allowed read (a heavy method no one can call is a typo)."""
    assert set(RPC_HEAVY_METHODS) <= set(RPC_READ_METHODS)
