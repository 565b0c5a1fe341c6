"""Kafka clients as async context managers, with the settings the request path needs."""

from __future__ import annotations

import asyncio
import logging
from collections.abc import AsyncIterator
from contextlib import asynccontextmanager
from pathlib import Path
from typing import Any, TypeVar

from aiokafka import AIOKafkaConsumer, AIOKafkaProducer, ConsumerRebalanceListener
from aiokafka.conn import create_conn
from aiokafka.errors import (
    AuthenticationFailedError,
    KafkaConnectionError,
    KafkaError,
    MessageSizeTooLargeError,
    RecordListTooLargeError,
    RecordTooLargeError,
    SaslAuthenticationFailed,
)
from pydantic import BaseModel

from ethgw_wire.settings import KafkaSettings

log = logging.getLogger("ethgw.kafka")

ModelT = TypeVar("ModelT", bound=BaseModel)

# A waiting fetch is answered as soon as a record arrives, so this bounds idle
# polling, not latency: measured on one broker, 10 ms gave no faster round trip
# than 100 ms but cost 4x the broker CPU (docs/kafka.md).
FETCH_MAX_WAIT_MS = 100
LINGER_MS = 0


# Errors about a record itself: sending the same record again can never succeed.
RECORD_REFUSED: tuple[type[Exception], ...] = (
    MessageSizeTooLargeError,
    RecordListTooLargeError,
    RecordTooLargeError,
)


SASL_MECHANISM = "SCRAM-SHA-512"


class KafkaCredentialsError(KafkaConnectionError):  # type: ignore[misc]
    """The broker refused this stack's credentials (another stack's broker?), or there are
    none yet. Retrying cannot help: the password is read once."""


def client_options(settings: KafkaSettings, *, admin: bool = False) -> dict[str, Any]:
    """The address and SASL options of every Kafka client: producers, consumers, admin
    clients. `admin`: the broker's super user (topics and ACLs), for devstack and tests."""
    username = settings.admin_username if admin else settings.username
    path = settings.admin_password_path if admin else settings.platform_password_path
    return {
        "bootstrap_servers": settings.bootstrap_servers,
        "security_protocol": "SASL_PLAINTEXT",
        "sasl_mechanism": SASL_MECHANISM,
        "sasl_plain_username": username,
        "sasl_plain_password": _read_password(path, username),
    }


def _read_password(path: Path, username: str) -> str:
    try:
        return path.read_text().strip()
    except FileNotFoundError:
        raise KafkaCredentialsError(
            f"no Kafka password for principal {username} at {path}: the stack's broker makes it"
            " at its first start (ethgw kafka up)"
        ) from None


async def check_credentials(settings: KafkaSettings, *, admin: bool = False) -> None:
    """Authenticate once to the broker; KafkaCredentialsError if it refuses who we are.

    aiokafka reports a refused login as "Unable to bootstrap", like a broker that is down;
    this tells the two apart."""
    options = client_options(settings, admin=admin)
    try:
        conn = await create_conn(
            settings.host,
            settings.port,
            security_protocol=options["security_protocol"],
            sasl_mechanism=options["sasl_mechanism"],
            sasl_plain_username=options["sasl_plain_username"],
            sasl_plain_password=options["sasl_plain_password"],
        )
    except (SaslAuthenticationFailed, AuthenticationFailedError):
        refused = KafkaCredentialsError(
            f"the Kafka broker at {settings.bootstrap_servers} refused principal"
            f" {options['sasl_plain_username']}: it is not this stack's broker, or its"
            " password differs from"
            f" {settings.admin_password_path if admin else settings.platform_password_path}"
        )
        log.error("kafka refused our credentials error=%s", refused)
        raise refused from None
    except (OSError, KafkaError, TimeoutError):
        return  # not reachable: not a question of credentials
    conn.close()


def encode(message: BaseModel) -> bytes:
    return message.model_dump_json().encode()


def decode(model: type[ModelT], raw: bytes | None) -> ModelT:
    return model.model_validate_json(raw or b"null")


async def stop_to_the_end(client: AIOKafkaProducer | AIOKafkaConsumer) -> None:
    """Stop `client` completely even if the caller is cancelled meanwhile, then let the
    cancellation go on. aiokafka marks a client closed as its stop begins, so a stop cut
    short is never finished: its connections stay open until the garbage collector finds
    them."""
    stopping = asyncio.ensure_future(client.stop())
    try:
        await asyncio.shield(stopping)
    except asyncio.CancelledError:
        await asyncio.wait([stopping])  # wait() never cancels what it waits for
        raise


async def _start_with_retries(
    client: AIOKafkaProducer | AIOKafkaConsumer,
    settings: KafkaSettings,
    what: str,
    tries: int,
    delay_s: float,
) -> None:
    """Kafka may still be starting when a service starts: retry, saying how many tries remain.
    A broker that refuses our credentials is not retried: KafkaCredentialsError at once.

    A start that ends otherwise (out of tries, cancelled by a stop) stops the client before
    it raises: aiokafka's half-started client holds connections and tasks until stopped."""
    try:
        for attempt in range(1, tries + 1):
            try:
                await client.start()
                return
            except KafkaConnectionError as exc:
                await check_credentials(settings)
                if attempt == tries:
                    raise
                log.warning(
                    "kafka not reachable client=%s tries_left=%d error=%r",
                    what,
                    tries - attempt,
                    exc,
                )
                await asyncio.sleep(delay_s)
    except BaseException:
        await stop_to_the_end(client)
        raise


@asynccontextmanager
async def kafka_producer(
    settings: KafkaSettings, *, tries: int = 10, retry_delay_s: float = 1.0, **overrides: Any
) -> AsyncIterator[AIOKafkaProducer]:
    """An idempotent producer that waits for every in-sync replica (nothing acked is lost)."""
    options: dict[str, Any] = {
        **client_options(settings),
        "acks": "all",
        "enable_idempotence": True,
        "linger_ms": LINGER_MS,
        "max_request_size": settings.max_message_bytes,
    }
    options.update(overrides)
    producer = AIOKafkaProducer(**options)
    await _start_with_retries(producer, settings, "producer", tries, retry_delay_s)
    try:
        yield producer
    finally:
        await stop_to_the_end(producer)


@asynccontextmanager
async def kafka_consumer(
    settings: KafkaSettings,
    *topics: str,
    group_id: str | None,
    listener: ConsumerRebalanceListener | None = None,
    tries: int = 10,
    retry_delay_s: float = 1.0,
    **overrides: Any,
) -> AsyncIterator[AIOKafkaConsumer]:
    """A consumer with manual commits (commit after the work is done: at least once)."""
    options: dict[str, Any] = {
        **client_options(settings),
        "group_id": group_id,
        "enable_auto_commit": False,
        "auto_offset_reset": "earliest",
        "fetch_max_wait_ms": FETCH_MAX_WAIT_MS,
        "isolation_level": "read_committed",
    }
    options.update(overrides)
    consumer = AIOKafkaConsumer(**options)
    if topics:
        consumer.subscribe(list(topics), listener=listener)
    await _start_with_retries(consumer, settings, f"consumer:{group_id}", tries, retry_delay_s)
    try:
        yield consumer
    finally:
        await stop_to_the_end(consumer)


async def publish(
    producer: AIOKafkaProducer, topic: str, message: BaseModel, key: str | None = None
) -> None:
    """Send and wait for the broker's acknowledgement."""
    await producer.send_and_wait(topic, encode(message), key=key.encode() if key else None)
