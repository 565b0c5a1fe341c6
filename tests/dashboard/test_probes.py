"""The dashboard's background readings: the traffic history and the providers' in-flight
counts, on what a real deployment can serve them."""

from __future__ import annotations

import asyncio
import uuid
from pathlib import Path

import httpx

from devstack.kafka_broker import KafkaBroker
from gateway.app import create_app as create_gateway
from gateway.config import GatewaySettings
from gateway.inflight import InflightProbe
from gateway.traffic import TrafficMeter
from tests.dashboard.conftest import LoopServer

HTML = "<html><body>not a metrics page</body></html>"


def test_traffic_history_covers_only_the_kept_seconds() -> None:
    """With sparse traffic the history spans at most `keep_s` seconds, not every second
    since the oldest request the meter still holds."""
    meter = TrafficMeter(keep_s=60)
    for hour in range(5):
        meter.observe(0.01, 200, 3600.0 * hour)
    history = meter.summary(3600.0 * 4 + 30.0).history
    assert len(history) <= 60
    assert sum(count for _, count in history) == 1


async def test_inflight_counts_a_page_that_is_not_metrics_as_failed() -> None:
    """A provider URL answering 200 with HTML is a failed provider, not a failed refresh."""

    def handler(request: httpx.Request) -> httpx.Response:
        return httpx.Response(200, text=HTML)

    async with httpx.AsyncClient(transport=httpx.MockTransport(handler)) as client:
        reading = await InflightProbe(client, ["http://provider-1"]).measure()
    assert reading.failed == ("http://provider-1",)
    assert reading.answered == 0


async def test_a_scrape_alone_keeps_the_kafka_lag_gauge_fresh(
    kafka_broker: KafkaBroker, tmp_path: Path
) -> None:
    """With no dashboard open, scraping /metrics measures the lag: the gauge appears."""
    group = f"ethgw.test.scrape-only-{uuid.uuid4().hex[:8]}"  # a gauge no other test has set
    settings = GatewaySettings(
        state_dir=tmp_path, manager_url="http://unset", provider_group_id=group
    )
    gauge = f'ethgw_kafka_consumer_lag_messages{{group="{group}",'
    async with (
        LoopServer(create_gateway(settings, kafka_broker.settings)) as gateway,
        httpx.AsyncClient(base_url=gateway.url, trust_env=False) as client,
    ):
        async with asyncio.timeout(30):
            while True:  # the first scrape starts the measurement, a later one shows it
                if gauge in (await client.get("/metrics")).text:
                    break
                await asyncio.sleep(0.5)
