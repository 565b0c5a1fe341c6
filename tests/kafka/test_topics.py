"""The topics the settings name, as ensure_topics() leaves them on the real broker."""

from __future__ import annotations

from collections.abc import AsyncIterator
from typing import Any

import pytest
from aiokafka.admin import AIOKafkaAdminClient
from aiokafka.admin.config_resource import ConfigResource, ConfigResourceType

from devstack.kafka_broker import KafkaBroker
from ethgw_wire.kafka import client_options

pytestmark = pytest.mark.slow


@pytest.fixture
async def admin(kafka_broker: KafkaBroker) -> AsyncIterator[Any]:
    client = AIOKafkaAdminClient(**client_options(kafka_broker.settings, admin=True))
    await client.start()
    try:
        yield client
    finally:
        await client.close()


async def test_settings_topics_exist_with_their_partition_counts(
    kafka_broker: KafkaBroker, admin: Any
) -> None:
    """Every topic the settings name exists with the configured number of partitions."""
    wanted = kafka_broker.settings.topic_partitions()
    described = await admin.describe_topics(list(wanted))
    counts = {t["topic"]: len(t["partitions"]) for t in described if t["error_code"] == 0}
    assert counts == wanted


async def test_node_states_topic_is_compacted(kafka_broker: KafkaBroker, admin: Any) -> None:
    """The node-states topic keeps the latest value per key (cleanup.policy=compact)."""
    topic = kafka_broker.settings.topic_node_states
    [response] = await admin.describe_configs(
        [ConfigResource(ConfigResourceType.TOPIC, topic, {"cleanup.policy": None})]
    )
    [resource] = response.to_object()["resources"]
    entries = {e["config_names"]: e["config_value"] for e in resource["config_entries"]}
    assert entries["cleanup.policy"] == "compact"


async def test_task_topics_are_not_compacted(kafka_broker: KafkaBroker, admin: Any) -> None:
    """Task topics keep every message (cleanup.policy=delete), compaction would drop tasks."""
    topic = kafka_broker.settings.topic_write
    [response] = await admin.describe_configs(
        [ConfigResource(ConfigResourceType.TOPIC, topic, {"cleanup.policy": None})]
    )
    [resource] = response.to_object()["resources"]
    entries = {e["config_names"]: e["config_value"] for e in resource["config_entries"]}
    assert entries["cleanup.policy"] == "delete"


async def test_ensure_topics_again_creates_nothing(kafka_broker: KafkaBroker) -> None:
    """A second ensure_topics() finds every topic in place and creates none."""
    assert await kafka_broker.ensure_topics() == []


async def test_consumer_offsets_topic_exists_after_ensure_topics(
    kafka_broker: KafkaBroker, admin: Any
) -> None:
    """ensure_topics() leaves the group coordinator ready, so a first group joins without retry."""
    assert "__consumer_offsets" in await admin.list_topics()
