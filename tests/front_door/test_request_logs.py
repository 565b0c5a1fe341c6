"""One request followed through the logs of a real stack (gateway, read instance, provider,
Kafka, Geth), every process logging JSON at DEBUG: each line is one JSON object, and the
request's id is on the lines of all three."""

from __future__ import annotations

import json
import uuid
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import httpx
import pytest
import pytest_asyncio

from devstack.kafka_broker import KafkaBroker
from geth_cluster.cluster import GethCluster
from tests.pipeline_fixtures import idle_reports, isolated_provider, start_front_door, stop_all

pytestmark = pytest.mark.slow

LOGS_ENV = {"ETHGW_LOG_FORMAT": "json", "ETHGW_LOG_LEVEL": "DEBUG"}
ROLES = ("gateway", "read", "provider")


@dataclass
class FollowedRequest:
    request_id: str
    status: int
    logs: dict[str, str]  # each role's whole log, its process stopped


@pytest_asyncio.fixture(scope="module", loop_scope="session")
async def followed(
    kafka_broker: KafkaBroker,
    geth_cluster: GethCluster,
    platform_file: Path,
    tmp_path_factory: pytest.TempPathFactory,
) -> FollowedRequest:
    """A provider, a gateway and its read and write instances on topics of their own, all
    logging JSON at DEBUG; one read sent through them with an X-Request-ID, then all stopped."""
    from gateway.keys import create_key

    work = tmp_path_factory.mktemp("request-logs")
    admin_key = create_key(work, "logs-admin", "admin")
    request_id = f"logs-{uuid.uuid4().hex[:12]}"
    async with isolated_provider(
        "reqlogs", geth_cluster, platform_file, work, idle_reports(geth_cluster), **LOGS_ENV
    ) as (pipeline, _client, _steered):
        processes = await start_front_door(pipeline, work, work, "reqlogs", **LOGS_ENV)
        try:
            gateway, reader, _writer = processes
            async with httpx.AsyncClient(timeout=60) as client:
                response = await client.get(
                    f"{gateway.url}/api/v1/conn/blockNum",
                    headers={"X-API-Key": admin_key, "X-Request-ID": request_id},
                )
        finally:
            stop_all(processes)
        provider = pipeline.providers[0]
        provider.stop()  # its log complete too
        logs = {"gateway": gateway.log(), "read": reader.log(), "provider": provider.log()}
    return FollowedRequest(request_id, response.status_code, logs)


def events(log: str) -> list[dict[str, Any]]:
    """Each line of a log parsed as one JSON object (fails on any other line)."""
    return [json.loads(line) for line in log.splitlines()]


async def test_one_request_id_is_on_the_gateway_read_and_provider_lines(
    followed: FollowedRequest,
) -> None:
    """A read sent with X-Request-ID: the gateway's request line, the read instance's
    request line and the provider's task_done line all carry that id."""
    assert followed.status == 200
    wanted = {"gateway": "request", "read": "request", "provider": "task_done"}
    for role, event in wanted.items():
        mine = [
            e for e in events(followed.logs[role]) if e.get("request_id") == followed.request_id
        ]
        assert event in [e["event"] for e in mine], (role, mine)


async def test_every_line_of_every_process_is_one_json_object(followed: FollowedRequest) -> None:
    """ETHGW_LOG_FORMAT=json: startup, library and request lines alike parse as JSON, each
    with its time, level, logger and event."""
    for role in ROLES:
        parsed = events(followed.logs[role])
        assert parsed, f"{role} logged nothing"
        for event in parsed:
            assert {"ts", "level", "logger", "event"} <= event.keys(), (role, event)
