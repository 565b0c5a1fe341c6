"""Tasks in flight per node, summed over the providers, for the dashboard's node table; and,
from the same pages, the providers' read cache hits and misses.

Only the providers know what they have dispatched and not yet seen finish; each exports it
as `ethgw_provider_inflight{node}` on its /metrics. The gateway reads those pages (the URLs
are a setting: `ethgw up` passes its providers') and adds the figures up per node. Like the
Kafka lag it is never waited for: `latest()` answers the last sum at once and starts one
refresh in the background when it is older than `cache_s`.
"""

from __future__ import annotations

import asyncio
import logging
import time
from collections.abc import Sequence
from dataclasses import dataclass, field

import httpx

from ethgw_wire.provider_metrics import cache_requests, inflight_by_node
from gateway.background import BackgroundRefresh

log = logging.getLogger("ethgw.gateway")


@dataclass(frozen=True)
class InflightReading:
    """The sum over the providers that answered, and which did not."""

    by_node: dict[str, int] = field(default_factory=dict)
    answered: int = 0
    failed: tuple[str, ...] = ()
    measured_at: float = 0.0
    # (cache, "hit" or "miss") -> reads, summed over the providers that answered.
    cache: dict[tuple[str, str], int] = field(default_factory=dict)

    def cache_ratios(self) -> dict[str, dict[str, float | int | None]]:
        """Each cache's hits, misses and hit ratio (None before its first read)."""
        caches = sorted({cache for cache, _ in self.cache})
        view: dict[str, dict[str, float | int | None]] = {}
        for cache in caches:
            hits = self.cache.get((cache, "hit"), 0)
            misses = self.cache.get((cache, "miss"), 0)
            total = hits + misses
            ratio = round(hits / total, 4) if total else None
            view[cache] = {"hits": hits, "misses": misses, "hit_ratio": ratio}
        return view


class InflightProbe:
    def __init__(
        self,
        client: httpx.AsyncClient,
        provider_urls: Sequence[str],
        cache_s: float = 1.0,
    ) -> None:
        self._client = client  # its timeout bounds each provider's answer
        self._urls = tuple(url.rstrip("/") for url in provider_urls)
        self._last: InflightReading | None = None
        self._refresh = BackgroundRefresh("gateway-inflight", cache_s)

    @property
    def configured(self) -> bool:
        return bool(self._urls)

    def latest(self) -> InflightReading | None:
        """The last sum (None before the first, or with no provider configured); a fresh one
        is read in the background when it is older than `cache_s`."""
        if not self._urls:
            return None
        last = self._last
        self._refresh.kick(None if last is None else last.measured_at, self.measure)
        return last

    async def measure(self) -> InflightReading:
        """Read every provider's /metrics now and add up their in-flight counts."""
        pages = await asyncio.gather(*(self._counts(url) for url in self._urls))
        total: dict[str, int] = {}
        cache: dict[tuple[str, str], int] = {}
        failed: list[str] = []
        for url, page in zip(self._urls, pages, strict=True):
            if page is None:
                failed.append(url)
                continue
            by_node, requests = page
            for node, count in by_node.items():
                total[node] = total.get(node, 0) + count
            for key, count in requests.items():
                cache[key] = cache.get(key, 0) + count
        reading = InflightReading(
            total, len(self._urls) - len(failed), tuple(failed), time.time(), cache
        )
        self._last = reading
        return reading

    async def aclose(self) -> None:
        await self._refresh.aclose()

    async def _counts(self, url: str) -> tuple[dict[str, int], dict[tuple[str, str], int]] | None:
        """One provider's in-flight counts by node and its cache reads; None when it gave
        no metrics page."""
        try:
            response = await self._client.get(f"{url}/metrics")
            response.raise_for_status()
            return inflight_by_node(response.text), cache_requests(response.text)
        # ValueError: a page that is not Prometheus text (a wrong URL answering 200) must
        # count as a failed provider, not end the refresh task with an unread exception.
        except (httpx.HTTPError, ValueError) as error:
            log.info("provider metrics unreadable url=%s error=%s", url, type(error).__name__)
            return None
