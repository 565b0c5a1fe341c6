"""The nodes as the scheduler sees them: the cluster manager's latest reports plus
this provider's own in-flight counts and its recent connection failures."""

from __future__ import annotations

from collections.abc import Collection, Mapping

from balancer import NodeState, distance
from ethgw_wire.node_reports import NodeReport
from ethgw_wire.topic_mirror import TopicMirror


class NodeView:
    def __init__(
        self, reports: TopicMirror[NodeReport], stale_s: float, suspect_s: float = 3.0
    ) -> None:
        self._reports = reports
        self._stale_s = stale_s
        self._suspect_s = suspect_s
        self._suspect_until: dict[str, float] = {}

    def states(self, inflight: Mapping[str, int], now: float) -> list[NodeState]:
        """One NodeState per known node, in node-id order; unroutable ones are down."""
        states = []
        for node_id, report in sorted(self._reports.items()):
            down = (
                not report.routable
                or now - report.sampled_at > self._stale_s
                or self._suspect_until.get(node_id, 0.0) > now
            )
            states.append(
                NodeState(
                    node_id=node_id,
                    memory=report.memory,
                    cpu=report.cpu,
                    inflight=inflight.get(node_id, 0),
                    free_memory_mb=report.free_memory_mb,
                    down=down,
                )
            )
        return states

    def nearest(
        self, inflight: Mapping[str, int], now: float, exclude: Collection[str] = ()
    ) -> str | None:
        """The routable node nearest the origin (the least loaded), outside `exclude`."""
        states = [s for s in self.states(inflight, now) if not s.down and s.node_id not in exclude]
        if not states:
            return None
        return min(states, key=lambda s: (distance(s.memory, s.cpu), s.node_id)).node_id

    def url(self, node_id: str) -> str | None:
        report = self._reports.get(node_id)
        return None if report is None else report.rpc_url

    def report(self, node_id: str) -> NodeReport | None:
        return self._reports.get(node_id)

    def suspect(self, node_id: str, now: float) -> None:
        """A node that just failed to answer is left out until the next reports confirm it."""
        self._suspect_until[node_id] = now + self._suspect_s

    async def wait_changed(self, timeout_s: float) -> None:
        await self._reports.wait_changed(timeout_s)
