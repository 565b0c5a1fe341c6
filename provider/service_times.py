"""Each node's recent service time, as this provider saw it: the input of lbh_adaptive's
latency-aware node choice.

A task's service time on its node is the node's share of the task: from taking an execution
slot until the node's work is done (`node_done`, or the end of the task), not the wait in the
queue nor a write's wait for its receipt. The figure is a peak EWMA that forgets in time, not
in samples (`decayed_mean`), and is read aged (`aged_service`): a node not heard from for a
while drifts back toward the cheapest figure, so one slow spell does not shun it for good.
"""

from __future__ import annotations

from balancer.adaptive_rules import DEFAULT_SERVICE_DECAY_S, aged_service, decayed_mean


class ServiceTimes:
    """The service-time EWMA per node, with the time of its last sample."""

    def __init__(self, decay_s: float = DEFAULT_SERVICE_DECAY_S) -> None:
        if not decay_s >= 0.0:
            raise ValueError(f"decay_s must be >= 0, got {decay_s}")
        self._decay_s = decay_s
        self._mean: dict[str, float] = {}
        self._seen_at: dict[str, float] = {}

    def observe(self, node_id: str, took_s: float, at: float) -> None:
        """Fold one task's service time on `node_id`, finished at `at`, into its figure."""
        took_s = max(0.0, took_s)  # a clock stepping back must not make a node look faster
        last = self._seen_at.get(node_id, at)
        self._mean[node_id] = decayed_mean(
            self._mean.get(node_id), took_s, at - last, self._decay_s
        )
        self._seen_at[node_id] = max(at, last)

    def at(self, now: float) -> dict[str, float]:
        """Each node's figure in seconds as of `now`; a node with no sample is absent."""
        return aged_service(self._mean, self._seen_at, now, self._decay_s)
