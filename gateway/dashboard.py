"""What the operator's dashboard shows, assembled from the manager, Kafka and the gateway.

The pure parts (paused periods from the LBH history, the merged event list) are functions
of plain data; `dashboard_view` does the calls, concurrently, each bounded by its client.
"""

from __future__ import annotations

import asyncio
import logging
import time
from collections.abc import Awaitable
from dataclasses import dataclass
from typing import Any, TypeVar

from gateway.errors import GatewayError, ManagerFailedError
from gateway.inflight import InflightReading
from gateway.schemas import ClusterView
from gateway.state import GatewayState
from gateway.traffic import TrafficSummary

T = TypeVar("T")

log = logging.getLogger("ethgw.gateway")

EVENTS_SHOWN = 50
CLUSTER = "cluster"  # the "node" of an event about the whole cluster (a pause)


@dataclass(frozen=True)
class Pause:
    """A run of ticks with LBH < 0: dispatching paused from `start` until `end` (None: still)."""

    start: float
    end: float | None
    lowest_lbh: float


def pauses(points: list[tuple[float, float]]) -> list[Pause]:
    """The paused periods of an LBH history of (time, lbh), oldest first. A pause ends at the
    first tick whose LBH is back at 0 or above."""
    found: list[Pause] = []
    start: float | None = None
    lowest = 0.0
    for at, lbh in points:
        if lbh < 0.0:
            if start is None:
                start, lowest = at, lbh
            lowest = min(lowest, lbh)
        elif start is not None:
            found.append(Pause(start, at, lowest))
            start = None
    if start is not None:
        found.append(Pause(start, None, lowest))
    return found


def pause_events(periods: list[Pause]) -> list[dict[str, Any]]:
    """Each pause as a `paused` event and, when it ended, a `resumed` one, shaped like the
    manager's events."""
    events: list[dict[str, Any]] = []
    for period in periods:
        events.append(
            {
                "time": period.start,
                "node": CLUSTER,
                "kind": "paused",
                "reason": "lbh",
                "detail": "LBH < 0: dispatching paused",
            }
        )
        if period.end is not None:
            events.append(
                {
                    "time": period.end,
                    "node": CLUSTER,
                    "kind": "resumed",
                    "reason": "lbh",
                    "detail": f"LBH back to >= 0 (lowest {period.lowest_lbh:.3f})",
                }
            )
    return events


def recent_events(
    manager_events: list[dict[str, Any]], periods: list[Pause], keep: int = EVENTS_SHOWN
) -> list[dict[str, Any]]:
    """The manager's events and the pauses, newest first, at most `keep`."""
    merged = [*manager_events, *pause_events(periods)]
    merged.sort(key=lambda event: float(event.get("time") or 0.0), reverse=True)
    return merged[:keep]


def with_inflight(cluster: ClusterView, by_node: dict[str, int]) -> ClusterView:
    """The providers' in-flight counts put on the nodes the manager reported none for (a
    node no provider has dispatched to has 0)."""
    nodes = [
        node
        if node.in_flight is not None
        else node.model_copy(update={"in_flight": by_node.get(node.node_id, 0)})
        for node in cluster.nodes
    ]
    return cluster.model_copy(update={"nodes": nodes})


# The parts found missing at the last poll: a part is logged when it goes missing and when it
# is back, not at every poll (each open page polls every second).
_missing_parts: set[str] = set()


async def _optional(name: str, call: Awaitable[T], default: T) -> tuple[T, str | None]:
    """A part the page can do without: its value, or the default and why it is missing."""
    try:
        value = await call
    except GatewayError as error:
        if name not in _missing_parts:
            _missing_parts.add(name)
            log.info("dashboard part missing part=%s error=%s", name, error.code)
        return default, str(error)
    if name in _missing_parts:
        _missing_parts.discard(name)
        log.info("dashboard part back part=%s", name)
    return value, None


async def dashboard_view(state: GatewayState) -> dict[str, Any]:
    """Everything the page draws, as of now. The cluster snapshot is required (its errors
    are the answer); the LBH history and the events are shown when they come, the Kafka lag
    as last measured."""
    lag = state.lag_probe.latest()  # never waited for: at most one period old
    inflight = state.inflight_probe.latest()
    snapshot, (history, history_error), (events, events_error) = await asyncio.gather(
        state.manager.snapshot(),
        _optional("lbh", state.manager.lbh_history(), []),
        _optional("events", state.manager.events(), []),
    )
    try:
        cluster = ClusterView.from_snapshot(snapshot)
    except ValueError:
        raise ManagerFailedError("the cluster manager's snapshot has an unknown shape") from None
    if inflight is not None:
        cluster = with_inflight(cluster, inflight.by_node)
    periods = pauses(history)
    now = time.time()
    traffic = state.traffic.summary(now, state.settings.traffic_window_s)
    missing = {
        part: error
        for part, error in (("lbh", history_error), ("events", events_error))
        if error is not None
    }
    return {
        "cluster": cluster.model_dump(mode="json"),
        "lbh": {
            "points": [[at, value] for at, value in history],
            "pauses": [[p.start, p.end] for p in periods],
        },
        "events": recent_events(events, periods),
        "gateway": _traffic_view(traffic),
        "kafka": lag.as_dict(),
        "providers": _providers_view(state, inflight),
        "missing": missing,
        "now": now,
    }


def _providers_view(state: GatewayState, inflight: InflightReading | None) -> dict[str, Any]:
    """Which providers' in-flight counts the table shows, and their read caches' hit ratios."""
    configured = len(state.settings.provider_urls)
    if inflight is None:
        return {"configured": configured, "answered": None, "failed": [], "cache": {}}
    return {
        "configured": configured,
        "answered": inflight.answered,
        "failed": inflight.failed,
        "cache": inflight.cache_ratios(),
    }


def _traffic_view(traffic: TrafficSummary) -> dict[str, Any]:
    def ms(seconds: float | None) -> float | None:
        return None if seconds is None else round(seconds * 1000.0, 3)

    return {
        "window_s": traffic.window_s,
        "requests_per_s": traffic.requests_per_s,
        "errors_per_s": traffic.errors_per_s,
        "latency_p50_ms": ms(traffic.latency_p50_s),
        "latency_p95_ms": ms(traffic.latency_p95_s),
        "history": [[at, count] for at, count in traffic.history],
    }
