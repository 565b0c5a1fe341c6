"""Kafka tests: the session broker fixture, and a fresh topic per test."""

from __future__ import annotations

import uuid
from collections.abc import Awaitable, Callable

import pytest
from aiokafka.admin import AIOKafkaAdminClient, NewTopic

from devstack.kafka_broker import KafkaBroker
from ethgw_wire.kafka import client_options

TopicFactory = Callable[[int], Awaitable[str]]


def pytest_configure(config: pytest.Config) -> None:
    # pytest refuses `pytest_plugins` outside the top-level conftest; register the
    # fixture module here unless the top-level conftest already loads it (a second
    # registration would start a second broker).
    if not config.pluginmanager.has_plugin("tests.kafka_fixtures"):
        config.pluginmanager.import_plugin("tests.kafka_fixtures")


@pytest.fixture
def new_topic(kafka_broker: KafkaBroker) -> TopicFactory:
    """Create a topic with a unique name and the given partition count; return its name."""

    async def create(partitions: int) -> str:
        name = f"ethgw.test.{uuid.uuid4().hex[:12]}"
        admin = AIOKafkaAdminClient(**client_options(kafka_broker.settings))
        await admin.start()
        try:
            await admin.create_topics([NewTopic(name, partitions, 1)])
        finally:
            await admin.close()
        return name

    return create
