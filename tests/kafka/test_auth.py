"""Who may use the broker: SASL/SCRAM-SHA-512 principals and the platform principal's ACLs."""

from __future__ import annotations

import stat
import uuid
from pathlib import Path

import pytest
from aiokafka import AIOKafkaConsumer, AIOKafkaProducer
from aiokafka.admin import AIOKafkaAdminClient, NewTopic
from aiokafka.errors import KafkaConnectionError, TopicAuthorizationFailedError

from devstack.kafka_broker import KafkaBroker, PortInUseError
from ethgw_wire.kafka import KafkaCredentialsError, client_options, kafka_consumer, kafka_producer
from ethgw_wire.settings import KafkaSettings
from service_kit.keyfiles import write_private


def another_stack(broker: KafkaBroker, tmp_path: Path) -> KafkaSettings:
    """This broker's address with the credentials a second stack's first start made."""
    second = KafkaBroker(broker.settings.model_copy(update={"state_dir": tmp_path / "kafka"}))
    second.ensure_credentials()
    return second.settings


async def test_a_client_without_credentials_cannot_produce(kafka_broker: KafkaBroker) -> None:
    """A producer that does not authenticate never gets to the broker's topics."""
    producer = AIOKafkaProducer(
        bootstrap_servers=kafka_broker.settings.bootstrap_servers, request_timeout_ms=5000
    )
    with pytest.raises(KafkaConnectionError, match="Unable to bootstrap"):
        await producer.start()
    await producer.stop()


async def test_a_client_without_credentials_cannot_consume(kafka_broker: KafkaBroker) -> None:
    """A consumer that does not authenticate reads nothing."""
    consumer = AIOKafkaConsumer(
        kafka_broker.settings.topic_read,
        bootstrap_servers=kafka_broker.settings.bootstrap_servers,
        request_timeout_ms=5000,
    )
    with pytest.raises(KafkaConnectionError, match="Unable to bootstrap"):
        await consumer.start()
    await consumer.stop()


async def test_a_wrong_password_is_refused_at_once_with_a_clear_error(
    kafka_broker: KafkaBroker, tmp_path: Path
) -> None:
    """A wrong password is not retried: the error names the principal and the broker."""
    wrong = tmp_path / "wrong.password"
    write_private(wrong, "not-the-password")
    settings = kafka_broker.settings.model_copy(update={"password_file": wrong})
    with pytest.raises(KafkaCredentialsError) as refused:
        async with kafka_producer(settings, tries=1000, retry_delay_s=1.0):
            pytest.fail("a wrong password cannot start a producer")
    message = str(refused.value)
    assert "refused principal ethgw" in message
    assert settings.bootstrap_servers in message
    assert "not-the-password" not in message


async def test_a_missing_password_file_names_the_file(tmp_path: Path) -> None:
    """No credentials at all: the error says where they should be."""
    settings = KafkaSettings(state_dir=tmp_path)
    with pytest.raises(KafkaCredentialsError, match="no Kafka password for principal ethgw"):
        async with kafka_producer(settings):
            pass


async def test_a_provider_of_another_stack_cannot_join_this_stacks_group(
    kafka_broker: KafkaBroker, tmp_path: Path
) -> None:
    """A provider holding another stack's credentials fails to authenticate and never
    becomes a member of this stack's provider group."""
    foreign = another_stack(kafka_broker, tmp_path)
    topics = (foreign.topic_read, foreign.topic_write)
    # Named like ProviderSettings.group_id, and this test's own (session providers use theirs).
    group = f"ethgw-providers-{uuid.uuid4().hex[:8]}"
    with pytest.raises(KafkaCredentialsError, match="not this stack's broker"):
        async with kafka_consumer(foreign, *topics, group_id=group):
            pytest.fail("another stack's provider joined the group")
    admin = AIOKafkaAdminClient(**client_options(kafka_broker.settings, admin=True))
    await admin.start()
    try:
        [described] = await admin.describe_consumer_groups([group])
    finally:
        await admin.close()
    [(_, _, state, _, _, members, *_)] = described.groups
    assert (state, members) == ("Dead", [])


async def test_the_platform_principal_cannot_read_a_topic_outside_its_prefix(
    kafka_broker: KafkaBroker,
) -> None:
    """A topic that does not start with resource_prefix is the admin's only."""
    outside = f"other.{uuid.uuid4().hex[:8]}"
    admin = AIOKafkaAdminClient(**client_options(kafka_broker.settings, admin=True))
    await admin.start()
    try:
        await admin.create_topics([NewTopic(outside, 1, 1)])
    finally:
        await admin.close()
    consumer = AIOKafkaConsumer(
        outside, **client_options(kafka_broker.settings), group_id=None, request_timeout_ms=5000
    )
    try:
        with pytest.raises(TopicAuthorizationFailedError, match=outside):
            await consumer.start()
    finally:
        await consumer.stop()


async def test_the_platform_principal_cannot_create_a_topic_outside_its_prefix(
    kafka_broker: KafkaBroker,
) -> None:
    """Creating a topic outside the prefix is refused with TOPIC_AUTHORIZATION_FAILED."""
    admin = AIOKafkaAdminClient(**client_options(kafka_broker.settings))
    await admin.start()
    try:
        response = await admin.create_topics([NewTopic(f"other.{uuid.uuid4().hex[:8]}", 1, 1)])
    finally:
        await admin.close()
    [(_, code, *_)] = response.topic_errors
    assert code == TopicAuthorizationFailedError.errno


def test_a_second_stack_does_not_adopt_a_broker_on_its_port(
    kafka_broker: KafkaBroker, tmp_path: Path
) -> None:
    """A second stack's broker start on a port this broker holds fails and says why."""
    second = KafkaBroker(another_stack(kafka_broker, tmp_path))
    with pytest.raises(PortInUseError, match="another stack's Kafka broker"):
        second.start()
    assert second.pid() is None


def test_credentials_and_the_config_holding_them_are_private(kafka_broker: KafkaBroker) -> None:
    """The password files and server.properties are 0600, and no log names a password."""
    s = kafka_broker.settings
    for path in (s.platform_password_path, s.admin_password_path, kafka_broker.config_file):
        assert stat.S_IMODE(path.stat().st_mode) == 0o600, path
    broker_log = kafka_broker.log_file.read_text(errors="replace")
    for path in (s.platform_password_path, s.admin_password_path):
        assert path.read_text().strip() not in broker_log
