"""A service instance's own reply topic: created when the instance starts, deleted when
it stops. Providers publish the result of a task there as well as on the shared results
topic, so an instance reads the results it waits for and no others."""

from __future__ import annotations

import logging

from aiokafka.admin import AIOKafkaAdminClient, NewTopic
from aiokafka.errors import KafkaError

from ethgw_wire.kafka import client_options
from ethgw_wire.settings import KafkaSettings

log = logging.getLogger("ethgw.tasks")

_TOPIC_ALREADY_EXISTS = 36

# A reply is read within the wait (30 s by default); what an instance that was killed
# leaves behind is dropped by the broker after this, a closed segment at a time.
REPLY_TOPIC_CONFIG = {
    "cleanup.policy": "delete",
    "retention.ms": str(5 * 60 * 1000),
    "segment.ms": str(10 * 60 * 1000),
}


class ReplyTopicError(RuntimeError):
    """The broker refused to create a reply topic."""


async def create_reply_topic(settings: KafkaSettings, name: str) -> None:
    """Create the topic (one partition), or keep it when it exists: an instance that
    restarts under the same id reads on from its end."""
    admin = AIOKafkaAdminClient(**client_options(settings))
    await admin.start()
    try:
        topic = NewTopic(
            name, num_partitions=1, replication_factor=1, topic_configs=REPLY_TOPIC_CONFIG
        )
        response = await admin.create_topics([topic])
        for topic_name, code, *_ in response.topic_errors:
            if code not in (0, _TOPIC_ALREADY_EXISTS):
                raise ReplyTopicError(f"creating reply topic {topic_name} failed: code {code}")
    finally:
        await admin.close()


async def delete_reply_topic(settings: KafkaSettings, name: str) -> None:
    """Delete the topic; a failure is logged, since the broker's retention bounds what
    is left."""
    admin = AIOKafkaAdminClient(**client_options(settings))
    try:
        await admin.start()
        await admin.delete_topics([name])
    except KafkaError as exc:
        log.warning("reply topic not deleted topic=%s error=%r", name, exc)
    finally:
        await admin.close()
