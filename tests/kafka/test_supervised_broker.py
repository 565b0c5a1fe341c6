"""The Kafka broker under `ethgw up`'s supervisor: killed with SIGKILL, it serves again."""

from __future__ import annotations

import asyncio
import contextlib
import logging
import os
import signal
from pathlib import Path

import pytest

from devstack.kafka_broker import KafkaBroker
from devstack.processes import BrokerProcess, Supervisor
from service_kit.logs import bound_fields
from tests.kafka_fixtures import kafka_test_settings

# A restart on 2 shared cores: log recovery after the kill, then the broker's start.
BACK_TIMEOUT_S = 120.0


@pytest.mark.slow
async def test_a_killed_broker_is_started_again_and_serves(
    tmp_path: Path, caplog: pytest.LogCaptureFixture
) -> None:
    """kill -9 of the broker: the supervisor starts it again on the same ports and data."""
    caplog.set_level(logging.INFO, "ethgw.stack")
    broker = KafkaBroker(kafka_test_settings(tmp_path))
    await asyncio.to_thread(broker.start)
    supervisor = Supervisor([BrokerProcess(broker)], poll_s=0.2)
    try:
        await broker.ensure_topics()
        killed = broker.pid()
        assert killed is not None
        supervisor.start()
        os.kill(killed, signal.SIGKILL)
        async with asyncio.timeout(BACK_TIMEOUT_S):
            while True:
                if supervisor.status() == ["kafka up (restarts 1)"]:
                    break
                await asyncio.sleep(0.5)
        assert broker.pid() not in (None, killed)
        assert await broker.ensure_topics() == []  # the topics survived: nothing to create
        restarted = {"event": "service_restarted", "name": "kafka", "exit": -9, "restarts": 1}
        assert restarted | {"backoff_s": 1.0} in [bound_fields(r) for r in caplog.records]
    finally:
        await supervisor.stop()
        with contextlib.suppress(Exception):
            await asyncio.to_thread(broker.stop)
