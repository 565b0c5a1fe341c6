"""The dashboard's in-flight column: the providers' `ethgw_provider_inflight`, summed."""

from __future__ import annotations

import httpx
import pytest

from consumer_service.task_client import TaskClient
from ethgw_wire.provider_metrics import inflight_by_node
from gateway.inflight import InflightProbe
from tests.pipeline_fixtures import ProviderProcess, run_task

PAGE = """\
# HELP ethgw_provider_inflight Tasks dispatched and not finished
# TYPE ethgw_provider_inflight gauge
ethgw_provider_inflight{node="node-1"} 3.0
ethgw_provider_inflight{node="node-2"} 0.0
# HELP ethgw_provider_lbh The cluster's health as this provider last planned
# TYPE ethgw_provider_lbh gauge
ethgw_provider_lbh 0.5
"""


def test_inflight_is_read_per_node_from_a_metrics_page() -> None:
    """Only ethgw_provider_inflight counts, by its node label."""
    assert inflight_by_node(PAGE) == {"node-1": 3, "node-2": 0}


@pytest.mark.slow
async def test_probe_reads_a_real_providers_metrics(
    provider: ProviderProcess, tasks: TaskClient
) -> None:
    """After a read ran on the session provider, its node is listed, with nothing in flight,
    and a provider that does not answer is named."""
    await run_task(tasks, "chain.block_number")
    dead = "http://127.0.0.1:9"  # discard port: refused
    async with httpx.AsyncClient(timeout=5.0, trust_env=False) as client:
        reading = await InflightProbe(client, [provider.url, dead]).measure()
    assert reading.by_node
    assert set(reading.by_node.values()) == {0}
    assert reading.answered == 1
    assert reading.failed == (dead,)
