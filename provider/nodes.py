"""The nodes as the scheduler sees them: the cluster manager's latest reports plus
this provider's own in-flight counts, its recent connection failures and the heads the
nodes' own answers showed since their last reports."""

from __future__ import annotations

import time
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
        # By RPC URL: (block, when) a node's answer showed it has. A report is up to a sample
        # interval old; a receipt or a block number just read is not. Kept for node_stale_s.
        self._observed: dict[str, tuple[int, float]] = {}

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
        self,
        inflight: Mapping[str, int],
        now: float,
        exclude: Collection[str] = (),
        min_head: int | None = None,
    ) -> str | None:
        """The routable node nearest the origin (the least loaded), outside `exclude`, among
        those known to have block `min_head` when one is given."""
        states = [
            s
            for s in self.states(inflight, now)
            if not s.down
            and s.node_id not in exclude
            and (min_head is None or self.has(s.node_id, min_head, now))
        ]
        if not states:
            return None
        return min(states, key=lambda s: (distance(s.memory, s.cpu), s.node_id)).node_id

    def head(self, node_id: str, now: float) -> int | None:
        """The highest block the node is known to have: its report's, or one its own answers
        showed since."""
        report = self._reports.get(node_id)
        if report is None:
            return None
        seen = self._observed.get(report.rpc_url)
        observed = seen[0] if seen is not None and now - seen[1] <= self._stale_s else None
        known = [block for block in (report.block, observed) if block is not None]
        return max(known, default=None)

    def has(self, node_id: str, block: int, now: float) -> bool:
        head = self.head(node_id, now)
        return head is not None and head >= block

    def highest_head(self) -> int | None:
        now = time.time()
        heads = [self.head(node_id, now) for node_id, _ in self._reports.items()]
        return max((head for head in heads if head is not None), default=None)

    def observe(self, url: str, block: int) -> None:
        """The node at `url` answered with block `block` (its head is at least that)."""
        seen = self._observed.get(url)
        if seen is None or block >= seen[0]:
            self._observed[url] = (block, time.time())

    def routable_urls(self, now: float) -> list[str]:
        urls = (self.url(s.node_id) for s in self.states({}, now) if not s.down)
        return [url for url in urls if url is not None]

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
