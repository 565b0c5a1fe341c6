"""When the manager restarts a node whose process died: the backoff and the crash-loop limit.

Pure: plain data in, plain data out, time passed in as an argument. The healer
(`geth_cluster.healer`) feeds it each death it sees and does what it answers.

A death is counted within a sliding window. The n-th death in the window is restarted after
`backoff_s * 2**(n-1)` seconds, capped at `backoff_max_s`; the death past `max_restarts` in
the window is a crash loop: the node is not restarted again until the operator says so.
"""

from __future__ import annotations

from dataclasses import dataclass

# 2**60 times any sensible base is past every cap; a higher exponent would overflow a float.
_MAX_DOUBLINGS = 60


@dataclass(frozen=True)
class CrashHistory:
    """One node's deaths within the window (monotonic times, oldest first) and whether the
    policy gave up on it."""

    deaths: tuple[float, ...] = ()
    gave_up: bool = False


@dataclass(frozen=True)
class Restart:
    """Start the node again after `delay_s`; `deaths` counts this one, within the window."""

    delay_s: float
    deaths: int


@dataclass(frozen=True)
class GiveUp:
    """A crash loop: leave the node stopped and out of routing, and say so."""

    deaths: int


CrashDecision = Restart | GiveUp


@dataclass(frozen=True)
class CrashPolicy:
    """Exponential backoff with a cap, and at most `max_restarts` restarts per `window_s`."""

    backoff_s: float = 1.0
    backoff_max_s: float = 60.0
    max_restarts: int = 3
    window_s: float = 600.0

    def __post_init__(self) -> None:
        if self.backoff_s < 0.0 or self.backoff_max_s < self.backoff_s:
            raise ValueError(
                f"need 0 <= backoff_s <= backoff_max_s, got {self.backoff_s}, {self.backoff_max_s}"
            )
        if self.max_restarts < 0 or self.window_s <= 0.0:
            raise ValueError(
                f"need max_restarts >= 0 and window_s > 0, got {self.max_restarts}, {self.window_s}"
            )

    def delay_s(self, deaths: int) -> float:
        """The wait before restarting after the `deaths`-th death in the window (from 1)."""
        doublings = min(max(deaths - 1, 0), _MAX_DOUBLINGS)
        return float(min(self.backoff_max_s, self.backoff_s * 2**doublings))

    def on_death(self, history: CrashHistory, now: float) -> tuple[CrashHistory, CrashDecision]:
        """The node was seen dead at `now`: its new history and what to do."""
        recent = (*(t for t in history.deaths if now - t < self.window_s), now)
        if len(recent) > self.max_restarts:
            return CrashHistory(recent, gave_up=True), GiveUp(len(recent))
        return CrashHistory(recent), Restart(self.delay_s(len(recent)), len(recent))
