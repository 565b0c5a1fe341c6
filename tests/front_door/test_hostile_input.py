"""Hostile input at the real gateway: schemathesis over the OpenAPI document, fuzzed
JSON-RPC at /rpc. No 5xx, and no task on Kafka for input the gateway calls invalid."""

from __future__ import annotations

import asyncio
import json
import os
import subprocess
import sys
from collections.abc import Iterable
from dataclasses import dataclass
from pathlib import Path

import pytest
from aiokafka import AIOKafkaConsumer, TopicPartition

from common.api import REQUEST_ID_HEADER
from common.settings import KafkaSettings
from common.tasks import TaskMessage
from tests.pipeline_fixtures import Stack

pytestmark = pytest.mark.slow

# The CI profile: about 500 cases over the ~40 operations of the document.
MAX_EXAMPLES = os.environ.get("ETHGW_SCHEMATHESIS_MAX_EXAMPLES", "6")
SCHEMATHESIS_TIMEOUT_S = 600.0
# Operations that would disturb the shared session chain whatever their input: stopping
# the sealer, restarting a node. Their refusals of bad input are tested in tests/gateway.
EXCLUDED_PATHS = r"^/admin/(mining/|nodes/\{node_id\}/restart)"
# What the gateway answers for input it refuses before any task exists.
REFUSAL_CODES = frozenset({"invalid_params", "body_too_large", "http_method_not_allowed"})


@dataclass(frozen=True)
class Exchange:
    method: str
    url: str
    status: int
    request_id: str | None
    error_code: str | None
    body: str  # the start of the request's body, to reproduce a failure


def exchanges_of(har_path: Path) -> list[Exchange]:
    """Every request schemathesis sent and what the gateway answered, from its HAR file."""
    entries = json.loads(har_path.read_text())["log"]["entries"]
    found = []
    for entry in entries:
        response = entry["response"]
        headers = {h["name"].lower(): h["value"] for h in response["headers"]}
        code = None
        try:
            body = json.loads(response["content"].get("text") or "null")
        except ValueError:
            body = None
        if isinstance(body, dict) and isinstance(body.get("error"), dict):
            code = body["error"].get("code")
        found.append(
            Exchange(
                entry["request"]["method"],
                entry["request"]["url"],
                response["status"],
                headers.get(REQUEST_ID_HEADER.lower()),
                code,
                (entry["request"].get("postData") or {}).get("text", "")[:300],
            )
        )
    return found


async def end_offsets(settings: KafkaSettings) -> dict[TopicPartition, int]:
    consumer = AIOKafkaConsumer(bootstrap_servers=settings.bootstrap_servers)
    await consumer.start()
    try:
        partitions = [
            TopicPartition(topic, p)
            for topic in (settings.topic_read, settings.topic_write)
            for p in consumer.partitions_for_topic(topic) or range(settings.task_partitions)
        ]
        return dict(await consumer.end_offsets(partitions))
    finally:
        await consumer.stop()


async def tasks_since(
    settings: KafkaSettings, start: dict[TopicPartition, int]
) -> list[TaskMessage]:
    """Every task put on the read and write topics after the `start` offsets."""
    end = await end_offsets(settings)
    consumer = AIOKafkaConsumer(
        bootstrap_servers=settings.bootstrap_servers, enable_auto_commit=False
    )
    await consumer.start()
    tasks: list[TaskMessage] = []
    try:
        wanted = {tp: end[tp] for tp in end if end[tp] > start.get(tp, 0)}
        if not wanted:
            return tasks
        consumer.assign(list(wanted))
        for tp in wanted:
            consumer.seek(tp, start.get(tp, 0))
        async with asyncio.timeout(60):
            while [tp for tp in wanted if await consumer.position(tp) < wanted[tp]]:
                batches = await consumer.getmany(timeout_ms=500)
                for records in batches.values():
                    tasks.extend(TaskMessage.model_validate_json(r.value) for r in records)
        return tasks
    finally:
        await consumer.stop()


def run_schemathesis(stack: Stack, report_dir: Path, mode: str) -> subprocess.CompletedProcess[str]:
    har = report_dir / f"{mode}.har"
    command = [
        str(Path(sys.executable).with_name("st")),
        "run",
        f"{stack.gateway.url}/openapi.json",
        "--checks",
        "not_a_server_error",
        "--mode",
        mode,
        "--max-examples",
        MAX_EXAMPLES,
        "--seed",
        "20261201",
        "--phases",
        "examples,coverage,fuzzing",
        # One worker: hypothesis describes filter lambdas with ast.parse, which CPython 3.11
        # can fail in concurrent threads ("AST constructor recursion depth mismatch").
        "--workers",
        "1",
        "--request-timeout",
        "60",
        "--exclude-path-regex",
        EXCLUDED_PATHS,
        "--header",
        f"X-API-Key: {stack.admin_key}",
        "--report",
        "har",
        "--report-har-path",
        str(har),
        "--no-color",
    ]
    return subprocess.run(
        command,
        capture_output=True,
        text=True,
        timeout=SCHEMATHESIS_TIMEOUT_S,
        cwd=report_dir,
    )


def server_errors(exchanges: Iterable[Exchange]) -> list[Exchange]:
    return [e for e in exchanges if e.status >= 500]


@pytest.mark.parametrize("mode", ["positive", "negative"])
async def test_schemathesis_finds_no_server_error(stack: Stack, tmp_path: Path, mode: str) -> None:
    """schemathesis over the gateway's OpenAPI document gets no 5xx."""
    settings = KafkaSettings()
    before = await end_offsets(settings)
    result = await asyncio.to_thread(run_schemathesis, stack, tmp_path, mode)
    exchanges = exchanges_of(tmp_path / f"{mode}.har")
    tasks = await tasks_since(settings, before)
    print("\n".join(result.stdout.splitlines()[-40:]))
    print(f"schemathesis mode={mode}: {len(exchanges)} requests, {len(tasks)} tasks on Kafka")
    refused = {e.request_id: e for e in exchanges if e.error_code in REFUSAL_CODES}
    leaked = [refused[t.request_id] for t in tasks if t.request_id in refused]
    errors = server_errors(exchanges)
    assert errors == [], "\n".join(map(repr, errors))
    assert result.returncode == 0, result.stdout[-6000:]
    assert leaked == []
