"""When to recycle a zone III node (lbh-spec.md section 7), as a pure policy.

The cluster manager samples the nodes, asks the policy after every sample, and runs the
drain-restart-resync steps for the node it names; the simulator does the same. The policy holds
no clock: the caller passes `now` (seconds, any monotonic origin) and keeps the returned state.
"""

from __future__ import annotations

import math
from collections.abc import Mapping
from dataclasses import dataclass, field, replace

from balancer.state import Zone

DEFAULT_RESTART_AFTER = 3
"""Consecutive zone III samples before a node is recycled."""

DEFAULT_COOLDOWN_S = 60.0
"""Seconds after a node's restart finishes before it may be recycled again."""


@dataclass(frozen=True)
class RecycleState:
    """What the policy remembers between samples; start from `RecycleState()`.

    streaks: consecutive zone III samples per node.
    cooled_at: per node, the time its cool-down ends.
    restarting: the node being recycled now, if any (one at a time).
    """

    streaks: Mapping[str, int] = field(default_factory=dict)
    cooled_at: Mapping[str, float] = field(default_factory=dict)
    restarting: str | None = None


@dataclass(frozen=True, slots=True)
class RecyclePolicy:
    """Recycle a node after `restart_after` consecutive zone III samples (default 3), one node
    at a time, never the last routable (not DOWN) node, and not again within `cooldown_s`
    (default 60 s) of its last restart finishing."""

    restart_after: int = DEFAULT_RESTART_AFTER
    cooldown_s: float = DEFAULT_COOLDOWN_S

    def __post_init__(self) -> None:
        if self.restart_after < 1:
            raise ValueError(f"restart_after must be >= 1, got {self.restart_after}")
        if not (math.isfinite(self.cooldown_s) and self.cooldown_s >= 0.0):
            raise ValueError(f"cooldown_s must be finite and >= 0, got {self.cooldown_s}")

    def observe(
        self, state: RecycleState, zones: Mapping[str, Zone], now: float
    ) -> tuple[RecycleState, str | None]:
        """Count one sample's zones; name the node to recycle now, if any.

        A named node is marked as restarting in the returned state; report the end of its
        restart with `finished`. Among several due nodes the longest streak goes first, then
        the lowest id. Nodes absent from `zones` are forgotten.
        """
        streaks = {
            node: state.streaks.get(node, 0) + 1 if zone is Zone.III else 0
            for node, zone in zones.items()
        }
        state = replace(state, streaks=streaks)
        if state.restarting is not None:
            return state, None
        routable = sum(zone is not Zone.DOWN for zone in zones.values())
        due = [
            node
            for node, streak in streaks.items()
            if streak >= self.restart_after and now >= state.cooled_at.get(node, -math.inf)
        ]
        # A due node is in zone III, hence routable; recycling it must leave another one.
        if not due or routable < 2:
            return state, None
        node = min(due, key=lambda n: (-streaks[n], n))
        return self.start(state, node), node

    def start(self, state: RecycleState, node: str) -> RecycleState:
        """Mark `node` as restarting (also for an operator's restart); its streak restarts."""
        if state.restarting is not None:
            raise ValueError(f"{state.restarting!r} is already restarting; one node at a time")
        return replace(state, streaks={**state.streaks, node: 0}, restarting=node)

    def finished(self, state: RecycleState, node: str, now: float) -> RecycleState:
        """`node` is back (answers and in sync) at `now`: its cool-down starts."""
        if state.restarting != node:
            raise ValueError(f"{node!r} is not the node restarting ({state.restarting!r})")
        cooled_at = {**state.cooled_at, node: now + self.cooldown_s}
        return replace(state, cooled_at=cooled_at, restarting=None)
