"""A provider left running from another stack on the same host (issue #17, item 5)."""

from __future__ import annotations

import asyncio
import time
from pathlib import Path

from devstack.kafka_broker import KafkaBroker
from geth_cluster.cluster import GethCluster
from tests.pipeline_fixtures import ProviderProcess, provider_env


async def test_a_provider_with_another_stacks_credentials_exits_at_start(
    geth_cluster: GethCluster,
    kafka_broker: KafkaBroker,
    platform_file: Path,
    provider_log_dir: Path,
    tmp_path: Path,
) -> None:
    """A real provider holding a second stack's Kafka password is refused at start, logs one
    clear line without the password, exits, and never gets partitions of the group."""
    other_stack = KafkaBroker(
        kafka_broker.settings.model_copy(update={"state_dir": tmp_path / "other" / "kafka"})
    )
    other_stack.ensure_credentials()
    password_file = other_stack.settings.platform_password_path
    env = provider_env(geth_cluster, platform_file, ETHGW_KAFKA_PASSWORD_FILE=str(password_file))
    process = ProviderProcess(env, provider_log_dir, "foreign")
    process.start()
    try:
        deadline = time.monotonic() + 120
        while process.process is not None and process.process.poll() is None:
            assert time.monotonic() < deadline, f"still running:\n{process.log()[-3000:]}"
            await asyncio.sleep(0.5)
    finally:
        process.stop()
    assert process.process is not None
    assert process.process.returncode != 0
    log = process.log()
    assert "kafka refused our credentials" in log
    assert "it is not this stack's broker" in log
    assert password_file.read_text().strip() not in log
    assert "partitions assigned" not in log
