"""When `ethgw up` starts a dead process again: compose's `restart: unless-stopped`, in numbers.

Pure: plain data in, plain data out, time passed in as an argument. The supervisor
(`devstack.processes.Supervisor`) feeds it each exit it sees and waits what it answers.

A process is always started again; only the wait changes. The n-th exit in a row waits
`backoff_s * 2**(n-1)`, capped at `backoff_max_s`; a process that stayed up `reset_after_s`
before it exited starts the row over, as Docker forgets the delay of a container that ran
long enough. A process that exits `loop_exits` times within `loop_window_s` is crash-looping:
the supervisor says so loudly and waits the cap each time, whatever its uptime was, but never
gives up on it (the stack cannot run without its broker or a provider).
"""

from __future__ import annotations

from dataclasses import dataclass

# 2**60 times any sensible base is past every cap; a higher exponent would overflow a float.
_MAX_DOUBLINGS = 60


@dataclass(frozen=True)
class RestartHistory:
    """One process's restarts: all of them, the exits in a row, and the recent exit times."""

    restarts: int = 0  # every restart since the stack started: the status line shows it
    in_a_row: int = 0  # exits since the process last stayed up reset_after_s
    exits: tuple[float, ...] = ()  # monotonic times within the loop window, oldest first


@dataclass(frozen=True)
class Restart:
    """Start the process again after `backoff_s`; `restarts` counts this one."""

    backoff_s: float
    restarts: int
    crash_loop: bool  # loop_exits or more exits within loop_window_s
    recent_exits: int  # exits within loop_window_s, this one included


@dataclass(frozen=True)
class RestartPolicy:
    """Exponential backoff from `backoff_s` to `backoff_max_s`, reset by a long enough uptime;
    `loop_exits` exits within `loop_window_s` make a crash loop, restarted at the cap."""

    backoff_s: float = 1.0
    backoff_max_s: float = 30.0
    reset_after_s: float = 30.0
    loop_exits: int = 5
    loop_window_s: float = 300.0

    def __post_init__(self) -> None:
        if self.backoff_s < 0.0 or self.backoff_max_s < self.backoff_s:
            raise ValueError(
                f"need 0 <= backoff_s <= backoff_max_s, got {self.backoff_s}, {self.backoff_max_s}"
            )
        if self.loop_exits < 1 or self.loop_window_s <= 0.0 or self.reset_after_s < 0.0:
            raise ValueError(
                "need loop_exits >= 1, loop_window_s > 0 and reset_after_s >= 0, got "
                f"{self.loop_exits}, {self.loop_window_s}, {self.reset_after_s}"
            )

    def backoff_for(self, in_a_row: int) -> float:
        """The wait before the restart after the `in_a_row`-th exit in a row (from 1)."""
        doublings = min(max(in_a_row - 1, 0), _MAX_DOUBLINGS)
        return float(min(self.backoff_max_s, self.backoff_s * 2**doublings))

    def on_exit(
        self, history: RestartHistory, uptime_s: float, now: float
    ) -> tuple[RestartHistory, Restart]:
        """The process exited at `now` after `uptime_s` up: its new history and the restart."""
        in_a_row = 1 if uptime_s >= self.reset_after_s else history.in_a_row + 1
        exits = (*(t for t in history.exits if now - t < self.loop_window_s), now)
        crash_loop = len(exits) >= self.loop_exits
        backoff_s = self.backoff_max_s if crash_loop else self.backoff_for(in_a_row)
        restarts = history.restarts + 1
        return (
            RestartHistory(restarts, in_a_row, exits),
            Restart(backoff_s, restarts, crash_loop, len(exits)),
        )
