"""What counts against an instance's breaker, on real servers: the instance failing,
never an answer to a client's bad input."""

from __future__ import annotations

import time
from typing import Any

from gateway.breaker import BreakerState
from tests.gateway.conftest import Fakes, Gateway


def _raw_tx_batch(size: int) -> list[dict[str, Any]]:
    call = {"jsonrpc": "2.0", "method": "eth_sendRawTransaction", "params": ["0x"]}
    return [{**call, "id": n} for n in range(size)]


def _states(gateway: Gateway, *instance_ids: str) -> list[BreakerState]:
    now = time.monotonic()
    return [gateway.instance(i).breaker.state(now) for i in instance_ids]


async def test_json_rpc_error_answers_open_no_breaker(wired: Gateway, fakes: Fakes) -> None:
    """A batch every write instance answers with -32602 leaves every write breaker closed."""
    fakes.write_a.mode = fakes.write_b.mode = "rpc_invalid"
    async with wired.client() as client:
        answer = await client.post("/rpc", json=_raw_tx_batch(10))
    assert [item["error"]["code"] for item in answer.json()] == [-32602] * 10
    assert _states(wired, "write-a", "write-b") == [BreakerState.CLOSED] * 2


async def test_a_service_internal_error_opens_no_breaker(wired: Gateway, fakes: Fakes) -> None:
    """500 envelopes (an error one request caused) pass through and count as answers."""
    fakes.write_a.mode = fakes.write_b.mode = "internal"
    body = {"from": "0x" + "ab" * 20, "to": "0x" + "cd" * 20, "value": 5}
    async with wired.client() as client:
        answers = [await client.post("/api/v1/token/transfer", json=body) for _ in range(6)]
    assert [a.json()["error"]["code"] for a in answers] == ["internal"] * 6
    assert _states(wired, "write-a", "write-b") == [BreakerState.CLOSED] * 2


async def test_an_answer_marked_as_the_instances_fault_opens_its_breaker(
    gateway: Gateway, fakes: Fakes
) -> None:
    """An instance whose Kafka is down (503, marked) is taken out; reads go to the other."""
    fakes.read_a.mode = "kafka_down"
    await gateway.register(fakes.read_a, fakes.read_b)
    async with gateway.client() as client:
        answers = [await client.get("/api/v1/conn/blockNum") for _ in range(6)]
    assert [a.status_code for a in answers] == [200] * 6
    assert _states(gateway, "read-a") == [BreakerState.OPEN]


async def test_a_marked_fault_of_a_write_still_answers_the_services_envelope(
    gateway: Gateway, fakes: Fakes
) -> None:
    """A write is not retried elsewhere; the client gets the instance's 503, retriable."""
    fakes.write_a.mode = "kafka_down"
    await gateway.register(fakes.write_a)
    body = {"from": "0x" + "ab" * 20, "to": "0x" + "cd" * 20, "value": 5}
    async with gateway.client() as client:
        answer = await client.post("/api/v1/token/transfer", json=body)
    assert answer.status_code == 503
    assert answer.json()["error"]["code"] == "kafka_unavailable"
    assert gateway.instance("write-a").breaker.failures == 1
