"""What the providers' /metrics pages say that others read: tasks in flight per node, and
tasks dispatched per node, zone and class.

Each provider exports `ethgw_provider_inflight{node}` (tasks dispatched to the node and not
finished). The gateway's dashboard sums it over the providers; the cluster manager waits for a
draining node's sum to reach 0 before restarting it.

Each provider also counts `ethgw_provider_dispatched_total{node,zone,task_class}`: every task it
sent to a node, with the zone the node was in by the round's plan and the task's class. The
overload demo (`ethgw demo overload`) reads it to show which zones took which classes.

And `ethgw_provider_cache_requests_total{cache,result}`: the reads its read cache was asked, hit
or miss, per cache (provider/read_cache.py). The dashboard shows each cache's hit ratio, summed
over the providers.
"""

from __future__ import annotations

from prometheus_client.parser import text_string_to_metric_families

INFLIGHT_METRIC = "ethgw_provider_inflight"
DISPATCHED_METRIC = "ethgw_provider_dispatched"  # a counter: exported with the suffix _total
CACHE_REQUESTS_METRIC = "ethgw_provider_cache_requests"  # a counter, like DISPATCHED_METRIC

Placement = tuple[str, str, str]
"""(node, zone, task class) of dispatched tasks."""


def inflight_by_node(metrics_text: str) -> dict[str, int]:
    """`ethgw_provider_inflight` of one provider's /metrics page, by node.

    Raises ValueError for a page that is not Prometheus text."""
    found: dict[str, int] = {}
    for family in text_string_to_metric_families(metrics_text):
        if family.name != INFLIGHT_METRIC:
            continue
        for sample in family.samples:
            node = sample.labels.get("node")
            if node:
                found[node] = found.get(node, 0) + round(sample.value)
    return found


def dispatched_by_placement(metrics_text: str) -> dict[Placement, int]:
    """`ethgw_provider_dispatched_total` of one provider's /metrics page, by (node, zone,
    task class).

    Raises ValueError for a page that is not Prometheus text."""
    found: dict[Placement, int] = {}
    for family in text_string_to_metric_families(metrics_text):
        if family.name != DISPATCHED_METRIC:
            continue
        for sample in family.samples:
            if not sample.name.endswith("_total"):
                continue  # the family's _created timestamps
            labels = sample.labels
            key = (labels["node"], labels["zone"], labels["task_class"])
            found[key] = found.get(key, 0) + round(sample.value)
    return found


def cache_requests(metrics_text: str) -> dict[tuple[str, str], int]:
    """`ethgw_provider_cache_requests_total` of one provider's /metrics page, by (cache,
    result), result being "hit" or "miss".

    Raises ValueError for a page that is not Prometheus text."""
    found: dict[tuple[str, str], int] = {}
    for family in text_string_to_metric_families(metrics_text):
        if family.name != CACHE_REQUESTS_METRIC:
            continue
        for sample in family.samples:
            if not sample.name.endswith("_total"):
                continue
            key = (sample.labels["cache"], sample.labels["result"])
            found[key] = found.get(key, 0) + round(sample.value)
    return found
