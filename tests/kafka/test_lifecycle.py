"""Starting and stopping the broker, and the errors that stop a start."""

from __future__ import annotations

import os
import socket
import subprocess
import sys
from pathlib import Path

import pytest

from devstack.kafka_broker import (
    BrokerExitedError,
    BrokerStartTimeoutError,
    BrokerUnreachableError,
    JavaNotFoundError,
    KafkaBroker,
    KafkaJarsMissingError,
    PortInUseError,
)
from service_kit import ports
from tests.kafka_fixtures import kafka_test_settings


@pytest.mark.parametrize(
    ("field", "env_name"),
    [
        ("port", "ETHGW_KAFKA_PORT"),
        ("controller_port", "ETHGW_KAFKA_CONTROLLER_PORT"),
    ],
)
def test_taken_port_stops_the_start_naming_port_and_setting(
    tmp_path: Path, field: str, env_name: str
) -> None:
    """A port something else holds stops start() with an error naming the port and its setting."""
    with socket.socket(socket.AF_INET, socket.SOCK_STREAM) as holder:
        holder.bind(("127.0.0.1", 0))
        holder.listen()
        taken = holder.getsockname()[1]
        settings = kafka_test_settings(tmp_path).model_copy(update={field: taken})
        broker = KafkaBroker(settings)
        # The shared class from service_kit.ports: what `ethgw up` catches for Geth and Kafka alike.
        with pytest.raises(
            ports.PortInUseError, match=rf"^port {taken} \({env_name}\) is already in use"
        ) as caught:
            broker.start()
    assert isinstance(caught.value, PortInUseError)
    assert not broker.is_running()


def test_missing_java_is_named_with_how_to_install_it(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    """Without java on PATH, start() says java is missing and how to install it."""
    monkeypatch.setenv("PATH", str(tmp_path))
    broker = KafkaBroker(kafka_test_settings(tmp_path))
    with pytest.raises(JavaNotFoundError, match=r"java not found.*apt-get install -y openjdk-17"):
        broker.start()


def test_missing_jars_point_to_the_bootstrap_script(tmp_path: Path) -> None:
    """Without the fetched jars, start() names the folder and the bootstrap script."""
    broker = KafkaBroker(kafka_test_settings(tmp_path / "state"), tools=tmp_path / "tools")
    with pytest.raises(KafkaJarsMissingError, match=r"scripts/bootstrap_kafka\.sh"):
        broker.start()


@pytest.mark.slow
def test_start_on_a_running_broker_keeps_the_running_process(kafka_broker: KafkaBroker) -> None:
    """start() on a broker that already runs returns at once and keeps the same process."""
    pid = kafka_broker.pid()
    kafka_broker.start()
    assert kafka_broker.pid() == pid


@pytest.mark.slow
def test_stop_works_from_another_process(kafka_broker: KafkaBroker) -> None:
    """Another process stops the broker through the pid file in the state folder."""
    code = (
        "from ethgw_wire.settings import KafkaSettings\n"
        "from devstack.kafka_broker import KafkaBroker\n"
        "print(KafkaBroker(KafkaSettings()).stop())\n"
    )
    try:
        # KafkaSettings() in the child reads the ETHGW_KAFKA_* the session fixture exported.
        done = subprocess.run(
            [sys.executable, "-c", code],
            capture_output=True,
            text=True,
            timeout=60,
            check=True,
            env={**os.environ},
        )
        assert done.stdout.strip() == "True"
        assert not kafka_broker.is_running()
    finally:
        kafka_broker.start()


@pytest.mark.slow
def test_broker_dying_during_start_reports_the_log_tail(tmp_path: Path) -> None:
    """A broker that exits while starting raises BrokerExitedError quoting its log."""
    # 12 MiB is far below what the broker allocates while starting (its log cleaner
    # alone asks for a 16 MiB buffer): -XX:+ExitOnOutOfMemoryError ends the JVM.
    settings = kafka_test_settings(tmp_path).model_copy(update={"heap_mb": 12})
    broker = KafkaBroker(settings)
    with pytest.raises(BrokerExitedError, match=r"(?s)exited before it served.*OutOfMemoryError"):
        broker.start()
    assert not broker.is_running()


@pytest.mark.slow
def test_broker_not_serving_in_time_is_stopped_and_reported(tmp_path: Path) -> None:
    """A broker that does not serve within the timeout is stopped and the timeout reported."""
    broker = KafkaBroker(kafka_test_settings(tmp_path))
    with pytest.raises(BrokerStartTimeoutError, match=r"did not serve on port \d+ within"):
        broker.start(timeout_s=0.2)
    assert not broker.is_running()


async def test_ensure_topics_without_a_broker_says_none_answers(tmp_path: Path) -> None:
    """ensure_topics() with no broker listening names the address it tried."""
    broker = KafkaBroker(kafka_test_settings(tmp_path))
    expected = r"no Kafka broker of this stack answers at 127\.0\.0\.1:"
    with pytest.raises(BrokerUnreachableError, match=expected):
        await broker.ensure_topics(timeout_s=2)
