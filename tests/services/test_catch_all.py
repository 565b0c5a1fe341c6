"""An error no handler takes still answers JSON, logged once with its traceback: the
envelope, a JSON-RPC error object on /rpc, and a marked 503 when Kafka is the cause."""

from __future__ import annotations

import logging
from dataclasses import dataclass, field

import pytest
from aiokafka.errors import KafkaTimeoutError

from ethgw_wire.http_api import REQUEST_ID_HEADER
from ethgw_wire.registration import INSTANCE_FAULT_HEADER
from read_service.app import create_app
from read_service.config import ReadServiceSettings
from service_kit.logs import bound_fields
from tests.services.fakes import FakeTasks, serving


@dataclass
class FailingTasks(FakeTasks):
    """Raises `failure` for every task it is asked to run."""

    failure: Exception = field(default_factory=lambda: RuntimeError("a bug"))

    async def run(self, task: object, timeout_s: float) -> None:
        raise self.failure


async def test_an_unhandled_error_answers_the_internal_envelope() -> None:
    """A route that raises answers 500 {status, message, error.code internal, request_id}."""
    async with serving(create_app(ReadServiceSettings()), FailingTasks()) as client:
        response = await client.get("/api/v1/conn/blockNum", headers={REQUEST_ID_HEADER: "r-1"})
    body = response.json()
    assert response.status_code == 500
    assert body["status"] == 500
    assert body["message"]
    assert body["error"]["code"] == "internal"
    assert body["request_id"] == "r-1"
    assert INSTANCE_FAULT_HEADER not in response.headers


async def test_an_unhandled_error_is_logged_once_with_its_traceback(
    caplog: pytest.LogCaptureFixture,
) -> None:
    """One log record, at ERROR, carrying the exception and the request id."""
    with caplog.at_level(logging.ERROR):
        async with serving(create_app(ReadServiceSettings()), FailingTasks()) as client:
            await client.get("/api/v1/conn/blockNum", headers={REQUEST_ID_HEADER: "r-2"})
    records = [r for r in caplog.records if r.exc_info]
    assert len(records) == 1
    assert bound_fields(records[0])["request_id"] == "r-2"


async def test_an_unhandled_error_on_rpc_is_a_json_rpc_error_object() -> None:
    """On /rpc the same failure is -32603 in a JSON-RPC response object."""
    call = {"jsonrpc": "2.0", "id": 4, "method": "eth_blockNumber", "params": []}
    async with serving(create_app(ReadServiceSettings()), FailingTasks()) as client:
        response = await client.post("/api/v1/rpc", json=call)
    body = response.json()
    assert response.status_code == 500
    assert body["jsonrpc"] == "2.0"
    assert body["error"]["code"] == -32603
    assert body["error"]["data"]["code"] == "internal"


async def test_kafka_unreachable_is_a_503_marked_as_the_instances_fault() -> None:
    """A Kafka error answers 503 kafka_unavailable, retriable, with the fault header."""
    tasks = FailingTasks(failure=KafkaTimeoutError())
    async with serving(create_app(ReadServiceSettings()), tasks) as client:
        response = await client.get("/api/v1/conn/blockNum")
    assert response.status_code == 503
    assert response.json()["error"]["code"] == "kafka_unavailable"
    assert response.json()["error"]["retriable"] is True
    assert response.headers[INSTANCE_FAULT_HEADER] == "kafka"
