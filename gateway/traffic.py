"""Request rate and latency of the gateway's API traffic over the last seconds, for the
operator's dashboard.

Prometheus has the same figures (`ethgw_gateway_requests_total`,
`ethgw_gateway_request_duration_seconds`), but only as totals since the start; this keeps one
small bucket per second, so the dashboard can show a rate and percentiles without a Prometheus
server. Percentiles are read off the same histogram buckets as the metric, interpolated
linearly as PromQL's `histogram_quantile` does, so the dashboard and Grafana agree.
Pure code: the caller passes the clock.
"""

from __future__ import annotations

import bisect
import math
from collections import deque
from collections.abc import Iterable, Sequence
from dataclasses import dataclass

# The buckets of ethgw_gateway_request_duration_seconds (gateway/metrics.py).
LATENCY_BUCKETS_S: tuple[float, ...] = (
    0.001,
    0.0025,
    0.005,
    0.01,
    0.025,
    0.05,
    0.1,
    0.25,
    0.5,
    1,
    2.5,
    5,
    10,
    30,
    60,
)
TRAFFIC_PREFIXES = ("/api/", "/rpc")
"""Routes counted as traffic: the app's calls, not the operators' or the scrapers' (the
dashboard's own polling would otherwise be most of what it shows on an idle stack)."""


def is_traffic(route: str) -> bool:
    return route.startswith(TRAFFIC_PREFIXES)


@dataclass
class _Second:
    """What was answered during one wall-clock second."""

    at: int
    buckets: list[int]  # one count per bound, and one for above the last
    count: int = 0
    errors: int = 0  # 5xx


@dataclass(frozen=True)
class TrafficSummary:
    window_s: int
    requests_per_s: float
    errors_per_s: float
    latency_p50_s: float | None  # None: no request in the window
    latency_p95_s: float | None
    history: list[tuple[int, int]]  # (second, requests) of every finished second kept


def quantile(q: float, counts: Sequence[int], bounds: Sequence[float]) -> float | None:
    """The q-quantile of a histogram: `counts[i]` observations were <= `bounds[i]` and above
    the previous bound; the last count is above every bound. Linear inside a bucket."""
    total = sum(counts)
    if total == 0:
        return None
    rank = q * total
    seen = 0
    for index, count in enumerate(counts):
        if count and seen + count >= rank:
            if index == len(bounds):  # above the largest bound: that bound is all we know
                return float(bounds[-1])
            lower = 0.0 if index == 0 else float(bounds[index - 1])
            return lower + (float(bounds[index]) - lower) * (rank - seen) / count
        seen += count
    return float(bounds[-1])


class TrafficMeter:
    """Per-second counts and latency histograms of the last `keep_s` seconds."""

    def __init__(self, keep_s: int = 300, bounds: Sequence[float] = LATENCY_BUCKETS_S) -> None:
        self._bounds = tuple(bounds)
        self._keep_s = keep_s
        self._seconds: deque[_Second] = deque(maxlen=keep_s)

    def observe(self, seconds: float, status: int, now: float) -> None:
        """One answered request that took `seconds`, with HTTP `status`, ended at `now`."""
        at = math.floor(now)
        if not self._seconds or self._seconds[-1].at != at:
            self._seconds.append(_Second(at, [0] * (len(self._bounds) + 1)))
        second = self._seconds[-1]
        second.count += 1
        second.errors += status >= 500
        second.buckets[bisect.bisect_left(self._bounds, seconds)] += 1

    def summary(self, now: float, window_s: int = 10) -> TrafficSummary:
        """Rate and percentiles over the last `window_s` finished seconds (the current second
        is still filling, so it would make the rate jump)."""
        current = math.floor(now)
        # By time, not only by count: with sparse traffic the deque's seconds span hours,
        # and the history (one entry per second since the oldest) would grow with them.
        finished = [s for s in self._seconds if current - self._keep_s <= s.at < current]
        recent = [s for s in finished if s.at >= current - window_s]
        counts = _sum_buckets(recent, len(self._bounds) + 1)
        return TrafficSummary(
            window_s=window_s,
            requests_per_s=sum(s.count for s in recent) / window_s,
            errors_per_s=sum(s.errors for s in recent) / window_s,
            latency_p50_s=quantile(0.5, counts, self._bounds),
            latency_p95_s=quantile(0.95, counts, self._bounds),
            history=_every_second(finished, current),
        )


def _sum_buckets(seconds: Iterable[_Second], size: int) -> list[int]:
    total = [0] * size
    for second in seconds:
        for index, count in enumerate(second.buckets):
            total[index] += count
    return total


def _every_second(seconds: list[_Second], current: int) -> list[tuple[int, int]]:
    """(second, requests) from the oldest kept second to the last finished one, with the
    seconds nobody called filled in as 0, so a chart's x axis is time."""
    if not seconds:
        return []
    by_second = {s.at: s.count for s in seconds}
    return [(at, by_second.get(at, 0)) for at in range(seconds[0].at, current)]
