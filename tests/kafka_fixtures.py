"""Session fixture: a real Kafka broker (KRaft, one node) on free ports with its state in a tmp dir.

Load with ``pytest_plugins = ["tests.kafka_fixtures"]`` in the top-level conftest.
For the session the fixture also exports ETHGW_KAFKA_HOST/PORT/CONTROLLER_PORT/STATE_DIR,
so ``KafkaSettings()`` in tests and in the processes they start points at this
broker and never at a developer's broker on the default ports.
"""

from __future__ import annotations

import asyncio
import random
import socket
from collections.abc import AsyncIterator
from pathlib import Path

import pytest
import pytest_asyncio

from devstack.kafka_broker import KafkaBroker
from ethgw_wire.settings import KafkaSettings

# Below the kernel's ephemeral range (32768+), so a client connection cannot grab
# the port between the probe and the broker's bind; away from the Geth test block
# (21000-29000) and the default 9092/9093.
_PORT_RANGE = range(19100, 20900, 2)


def _is_free(port: int, host: str = "127.0.0.1") -> bool:
    with socket.socket(socket.AF_INET, socket.SOCK_STREAM) as probe:
        probe.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
        try:
            probe.bind((host, port))
        except OSError:
            return False
        return True


def free_port_pair() -> tuple[int, int]:
    """Two consecutive free ports: the broker's client port and its controller port.

    Tried in a random order, so two test sessions starting at once (developers
    running suites side by side) do not both take the first free pair."""
    for port in random.sample(_PORT_RANGE, len(_PORT_RANGE)):
        if _is_free(port) and _is_free(port + 1):
            return port, port + 1
    raise RuntimeError(f"no two free consecutive ports in {_PORT_RANGE}")


def kafka_test_settings(state_dir: Path) -> KafkaSettings:
    """Settings for a test broker whose ports collide with nothing running."""
    port, controller_port = free_port_pair()
    return KafkaSettings(
        port=port,
        controller_port=controller_port,
        state_dir=state_dir,
        # Enough for tests; leaves memory for the Geth nodes sharing the machine.
        heap_mb=384,
    )


@pytest_asyncio.fixture(scope="session", loop_scope="session")
async def kafka_broker(tmp_path_factory: pytest.TempPathFactory) -> AsyncIterator[KafkaBroker]:
    """A started broker with the platform's topics, stopped after the session."""
    broker = KafkaBroker(kafka_test_settings(tmp_path_factory.mktemp("kafka")))
    s = broker.settings
    with pytest.MonkeyPatch.context() as env:
        env.setenv("ETHGW_KAFKA_HOST", s.host)
        env.setenv("ETHGW_KAFKA_PORT", str(s.port))
        env.setenv("ETHGW_KAFKA_CONTROLLER_PORT", str(s.controller_port))
        env.setenv("ETHGW_KAFKA_STATE_DIR", str(s.state_dir))
        try:
            # start() blocks for seconds; a thread keeps the session loop free meanwhile.
            await asyncio.to_thread(broker.start)
            await broker.ensure_topics()
            yield broker
        finally:
            await asyncio.to_thread(broker.stop)
