"""The Kafka client helpers close what they opened, even when the start never finished.

The clients are aiokafka's own, pointed at a port where nothing listens, with a spy that
counts which of them were stopped: an unclosed client is otherwise only seen as a warning
whenever the garbage collector gets to it, often in some later test.
"""

from __future__ import annotations

import asyncio
import contextlib
from collections.abc import Callable
from contextlib import AbstractAsyncContextManager
from pathlib import Path
from typing import Any

import pytest
from aiokafka import AIOKafkaConsumer, AIOKafkaProducer
from aiokafka.errors import KafkaConnectionError

import ethgw_wire.kafka
from ethgw_wire.kafka import kafka_consumer, kafka_producer
from ethgw_wire.settings import KafkaSettings
from service_kit.keyfiles import ensure_random_secret
from service_kit.ports import free_port

Opener = Callable[[KafkaSettings], AbstractAsyncContextManager[Any]]
OPENERS: dict[str, Opener] = {
    "producer": lambda s: kafka_producer(s, tries=100, retry_delay_s=0.05),
    "consumer": lambda s: kafka_consumer(s, "t", group_id=None, tries=100, retry_delay_s=0.05),
}


class Spy:
    """Which clients the helpers made, and which of those were stopped."""

    def __init__(self) -> None:
        self.made: list[object] = []
        self.stopped: list[object] = []

    def watch(self, cls: type[Any]) -> type[Any]:
        spy = self

        class Watched(cls):  # type: ignore[misc]
            def __init__(self, *args: Any, **kwargs: Any) -> None:
                super().__init__(*args, **kwargs)
                spy.made.append(self)

            async def stop(self) -> None:
                spy.stopped.append(self)
                await super().stop()

        return Watched


@pytest.fixture
def spy(monkeypatch: pytest.MonkeyPatch) -> Spy:
    watching = Spy()
    monkeypatch.setattr(ethgw_wire.kafka, "AIOKafkaProducer", watching.watch(AIOKafkaProducer))
    monkeypatch.setattr(ethgw_wire.kafka, "AIOKafkaConsumer", watching.watch(AIOKafkaConsumer))
    return watching


@pytest.fixture
def nowhere(tmp_path: Path) -> KafkaSettings:
    """A broker address where nothing listens: every start attempt fails and is retried."""
    settings = KafkaSettings(port=free_port(), state_dir=tmp_path)
    ensure_random_secret(settings.platform_password_path)
    return settings


@pytest.mark.parametrize("kind", sorted(OPENERS))
async def test_a_start_cancelled_while_retrying_stops_the_client(
    spy: Spy, kind: str, nowhere: KafkaSettings
) -> None:
    """Cancelling a client still trying to reach Kafka (a service told to stop) closes it."""
    settings = nowhere

    async def open_one() -> None:
        async with OPENERS[kind](settings):
            pytest.fail("no broker: the client cannot have started")

    task = asyncio.create_task(open_one())
    await asyncio.sleep(0.3)  # inside the start's retries
    task.cancel()
    with contextlib.suppress(asyncio.CancelledError):
        await task
    assert len(spy.made) == 1
    assert spy.stopped == spy.made


async def test_a_start_out_of_tries_stops_the_client_before_raising(
    spy: Spy, nowhere: KafkaSettings
) -> None:
    """The last failed try raises, and the producer it was starting is stopped first."""
    with pytest.raises(KafkaConnectionError):
        async with kafka_producer(nowhere, tries=2, retry_delay_s=0.05):
            pass
    assert len(spy.made) == 1
    assert spy.stopped == spy.made
