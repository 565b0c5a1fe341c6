"""What the providers' /metrics pages say that other services read: tasks in flight per node.

Each provider exports `ethgw_provider_inflight{node}` (tasks dispatched to the node and not
finished). The gateway's dashboard sums it over the providers; the cluster manager waits for a
draining node's sum to reach 0 before restarting it.
"""

from __future__ import annotations

from prometheus_client.parser import text_string_to_metric_families

INFLIGHT_METRIC = "ethgw_provider_inflight"


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
