"""The gateway's Prometheus metrics: counters defined once at module level, plus a
collector that reads the registry (instances, breaker states) at scrape time."""

from __future__ import annotations

import time
from collections.abc import Iterator

from prometheus_client import Counter, Gauge, Histogram
from prometheus_client.core import GaugeMetricFamily, Metric
from prometheus_client.registry import Collector

from gateway.breaker import BREAKER_STATE_VALUE
from gateway.instance_registry import Registry
from gateway.traffic import LATENCY_BUCKETS_S

REQUESTS = Counter(
    "ethgw_gateway_requests_total",
    "Requests answered, by route template, method and HTTP status",
    ["route", "method", "status"],
)
LATENCY = Histogram(
    "ethgw_gateway_request_duration_seconds",
    "Time from the request's arrival to the end of the response, by route template",
    ["route"],
    buckets=LATENCY_BUCKETS_S,
)
UPSTREAM_FAILURES = Counter(
    "ethgw_gateway_upstream_failures_total",
    "Calls to a service instance that failed (connect, timeout, protocol, bad_answer)",
    ["kind", "reason"],
)
RETRIES = Counter("ethgw_gateway_retries_total", "Calls retried on another instance", ["kind"])
NO_INSTANCE = Counter(
    "ethgw_gateway_no_instance_total", "Requests refused with 503: no healthy instance", ["kind"]
)
RATE_LIMITED = Counter("ethgw_gateway_rate_limited_total", "Requests refused with 429", ["role"])
HEAVY_REFUSED = Counter(
    "ethgw_gateway_heavy_calls_refused_total",
    "JSON-RPC heavy calls refused: their key already ran its limit of them",
    ["method"],
)
EVENT_STREAMS = Gauge("ethgw_gateway_event_streams", "Event streams open (GET /api/v1/events)")
EVENTS_SENT = Counter(
    "ethgw_gateway_events_sent_total", "Platform events sent on the event streams", ["kind"]
)
EVENT_STREAMS_DROPPED = Counter(
    "ethgw_gateway_event_streams_dropped_total",
    "Event streams the gateway ended: slow (a queue behind the live events, or a write"
    " that did not drain), source (the events could not be read), revoked (the key was),"
    " shutdown",
    ["reason"],
)
MANAGER_FAILURES = Counter(
    "ethgw_gateway_manager_failures_total", "Calls to the cluster manager that failed", ["reason"]
)
SUBSCRIPTIONS_OPEN = Gauge(
    "ethgw_gateway_subscriptions_open",
    "eth_subscribe subscriptions open on this gateway's WebSockets, by kind",
    ["kind"],
)
NOTIFICATIONS_SENT = Counter(
    "ethgw_gateway_notifications_sent_total",
    "eth_subscription notifications written to WebSockets, by subscription kind",
    ["kind"],
)
SLOW_CLIENTS_DROPPED = Counter(
    "ethgw_gateway_slow_clients_dropped_total",
    "WebSockets closed because their queue of unsent messages was full",
)

# Set by each measurement (gateway/kafka_lag.py), which a scrape or the dashboard starts
# when the last is stale; so a scrape shows the reading of at most one scrape ago.
KAFKA_LAG = Gauge(
    "ethgw_kafka_consumer_lag_messages",
    "Tasks in a topic not yet committed by the consumer group (as last measured)",
    ["group", "topic"],
)


class RegistryCollector(Collector):
    """Instances and breaker states, read at scrape time so an OPEN breaker that has
    become HALF_OPEN by the clock shows as such without any call having touched it."""

    def __init__(self, registry: Registry) -> None:
        self._registry = registry

    def collect(self) -> Iterator[Metric]:
        now = time.monotonic()
        breaker = GaugeMetricFamily(
            "ethgw_gateway_breaker_state",
            "Breaker of the instance: 0 closed, 1 half-open, 2 open",
            labels=["instance", "kind"],
        )
        instances = GaugeMetricFamily(
            "ethgw_gateway_instances", "Registered instances", labels=["kind", "healthy"]
        )
        for kind in ("read", "write"):
            members = self._registry.instances(kind)
            healthy = len(self._registry.healthy(kind, now))
            instances.add_metric([kind, "true"], healthy)
            instances.add_metric([kind, "false"], len(members) - healthy)
            for instance in members:
                state = instance.breaker.state(now)
                breaker.add_metric([instance.instance_id, kind], BREAKER_STATE_VALUE[state])
        yield breaker
        yield instances
