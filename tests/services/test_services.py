"""The read and write services: a request becomes a task, the answer is its result."""

from __future__ import annotations

import asyncio
import secrets
from collections.abc import AsyncIterator
from pathlib import Path

import httpx
import pytest
import pytest_asyncio
from aiokafka import AIOKafkaConsumer, TopicPartition

from ethgw_wire.kafka import client_options
from ethgw_wire.request_auth import signing_auth
from ethgw_wire.settings import KafkaSettings
from tests.pipeline_fixtures import ServerProcess, service_process

pytestmark = pytest.mark.slow

PASSWORD = "correct horse battery"


@pytest_asyncio.fixture(loop_scope="session")
async def http() -> AsyncIterator[httpx.AsyncClient]:
    async with httpx.AsyncClient(timeout=60, auth=signing_auth()) as client:
        yield client


async def _task_count(topic: str) -> int:
    """How many records the topic holds (its end offsets summed)."""
    consumer = AIOKafkaConsumer(**client_options(KafkaSettings()))
    await consumer.start()
    try:
        partitions = [TopicPartition(topic, p) for p in consumer.partitions_for_topic(topic) or []]
        if not partitions:
            await consumer.topics()
            partitions = [TopicPartition(topic, p) for p in range(KafkaSettings().task_partitions)]
        return sum((await consumer.end_offsets(partitions)).values())
    finally:
        await consumer.stop()


async def test_read_answers_the_envelope_with_the_result(
    read_service: ServerProcess, http: httpx.AsyncClient
) -> None:
    """GET blockNum answers 200 {status, message, data, task_id} and echoes the request id."""
    response = await http.get(
        f"{read_service.url}/api/v1/conn/blockNum", headers={"X-Request-ID": "req-123"}
    )
    body = response.json()
    assert response.status_code == 200
    assert body["status"] == 200
    assert body["message"] == "ok"
    assert body["data"]["block_number"] > 0
    assert len(body["task_id"]) == 32
    assert body["request_id"] == "req-123"
    assert response.headers["X-Request-ID"] == "req-123"


async def test_bad_address_is_refused_naming_the_field_and_queues_nothing(
    read_service: ServerProcess, http: httpx.AsyncClient
) -> None:
    """A malformed address answers 422 naming `address`, and no task reaches Kafka."""
    before = await _task_count(KafkaSettings().topic_read)
    response = await http.get(
        f"{read_service.url}/api/v1/token/balance", params={"address": "0xnope"}
    )
    after = await _task_count(KafkaSettings().topic_read)
    body = response.json()
    assert response.status_code == 422
    assert body["error"]["code"] == "invalid_params"
    assert body["error"]["field"] == "address"
    assert "20 bytes" in body["message"]
    assert after == before


async def test_missing_field_is_refused_naming_it(
    write_service: ServerProcess, http: httpx.AsyncClient
) -> None:
    """A body without a required field answers 422 naming the field."""
    response = await http.post(
        f"{write_service.url}/api/v1/admin/unlock", json={"address": "0x" + "11" * 20}
    )
    assert response.status_code == 422
    assert response.json()["error"]["field"] == "password"


async def test_write_flow_create_unlock_send(
    write_service: ServerProcess, read_service: ServerProcess, http: httpx.AsyncClient
) -> None:
    """Create, unlock and send with waitReceipt: the transfer is mined and readable."""
    base = f"{write_service.url}/api/v1"
    created = (await http.post(f"{base}/admin/new", json={"password": PASSWORD})).json()
    address = created["data"]["address"]
    unlocked = await http.post(
        f"{base}/admin/unlock", json={"address": address, "password": PASSWORD}
    )
    recipient = "0x" + secrets.token_hex(20)
    sent = await http.post(
        f"{base}/tx/send", json={"from": address, "to": recipient, "value": 99, "waitReceipt": True}
    )
    balance = await http.get(
        f"{read_service.url}/api/v1/eth/balance", params={"address": recipient}
    )
    assert unlocked.status_code == 200
    assert sent.status_code == 200
    assert sent.json()["data"]["status"] == "mined"
    assert balance.json()["data"]["balance_wei"] == 99


async def test_slow_write_answers_202_and_its_result_is_found_later_anywhere(
    provider_log_dir: Path, read_service: ServerProcess, http: httpx.AsyncClient
) -> None:
    """When the wait runs out the answer is 202 + task id; another instance finds the result."""
    impatient = service_process("write", provider_log_dir, "write-impatient", wait_timeout_s="0.2")
    impatient.start()
    try:
        await impatient.wait_ready()
        response = await http.post(
            f"{impatient.url}/api/v1/token/set",
            json={"address": "0x" + "88" * 20, "value": 5, "waitReceipt": True},
        )
    finally:
        impatient.stop()
    task_id = response.json()["task_id"]
    for _ in range(60):
        later = await http.get(f"{read_service.url}/api/v1/tasks/{task_id}")
        if later.status_code == 200:
            break
        await asyncio.sleep(0.5)
    assert response.status_code == 202
    assert later.status_code == 200
    assert later.json()["data"]["status"] == "mined"


async def test_unknown_task_id_is_404(read_service: ServerProcess, http: httpx.AsyncClient) -> None:
    """A task id nobody submitted answers 404 with the envelope."""
    response = await http.get(f"{read_service.url}/api/v1/tasks/{'ab' * 16}")
    assert response.status_code == 404
    assert response.json()["error"]["code"] == "not_found"


async def test_failed_task_maps_to_its_http_status(
    write_service: ServerProcess, http: httpx.AsyncClient
) -> None:
    """A write from a locked account answers 409 account_locked, retriable."""
    base = f"{write_service.url}/api/v1"
    created = (await http.post(f"{base}/admin/new", json={"password": PASSWORD})).json()
    response = await http.post(
        f"{base}/tx/send",
        json={"from": created["data"]["address"], "to": "0x" + "99" * 20, "value": 1},
    )
    body = response.json()
    assert response.status_code == 409
    assert body["error"]["code"] == "account_locked"
    assert body["error"]["retriable"] is True


async def test_single_json_rpc_call_on_the_read_service(
    read_service: ServerProcess, http: httpx.AsyncClient
) -> None:
    """POST /api/v1/rpc with eth_blockNumber answers a JSON-RPC result."""
    response = await http.post(
        f"{read_service.url}/api/v1/rpc",
        json={"jsonrpc": "2.0", "id": 7, "method": "eth_blockNumber"},
    )
    body = response.json()
    assert body["id"] == 7
    assert int(body["result"], 16) > 0


async def test_read_service_does_not_take_raw_transactions(
    read_service: ServerProcess, http: httpx.AsyncClient
) -> None:
    """eth_sendRawTransaction on the read service is a JSON-RPC 'method not found'."""
    response = await http.post(
        f"{read_service.url}/api/v1/rpc",
        json={"jsonrpc": "2.0", "id": 1, "method": "eth_sendRawTransaction", "params": ["0x00"]},
    )
    assert response.json()["error"]["code"] == -32601
