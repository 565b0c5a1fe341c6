"""The dashboard's background readings: the traffic history and the providers' in-flight
counts, on what a real deployment can serve them."""

from __future__ import annotations

import httpx

from gateway.inflight import InflightProbe
from gateway.traffic import TrafficMeter

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
