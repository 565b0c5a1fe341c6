"""Think time for the benchmark's users: each starts a task every `period_s` (pacing).

A paced user starts one task (one request of the mix) every `period_s` while its answers
come faster than that, so N users offer N / period_s requests a second: more users mean more
load, not only more concurrency. The rule is Locust's `constant_pacing`: the wait after a
task is what is left of its period; a task that took longer is followed at once by the next,
with no catching up. Two things differ from Locust's own, both so that the load grows
smoothly with the users: the clock starts at the user's first counted task (Locust's starts
when the user is made, so the set-up would count as the first task's time and the first two
tasks would go back to back), and each user starts at a random phase of its period (users
set up together would otherwise send every period in one burst). docs/benchmarks.md says
why pacing.
"""

from __future__ import annotations


class Pacing:
    """When one user's next task starts; a period of 0 is a closed loop (no wait)."""

    def __init__(self, period_s: float) -> None:
        if period_s < 0:
            raise ValueError(f"a think time is 0 or more seconds, got {period_s}")
        self.period_s = period_s
        self._started = 0.0  # when the task now running started

    def phase_s(self, draw: float) -> float:
        """How long to wait before the first task, for a `draw` uniform in [0, 1): the
        users' first tasks spread over one period instead of starting together."""
        return self.period_s * draw

    def start(self, now: float) -> None:
        """The first task starts `now` (after the phase)."""
        self._started = now

    def wait_s(self, now: float) -> float:
        """The wait after a task that ended `now`: the rest of its period, 0 if it took
        the whole period or more; the next task starts after it."""
        wait = max(0.0, self.period_s - (now - self._started))
        self._started = now + wait
        return wait


def offered_rps(users: int, think_s: float) -> float | None:
    """The request rate `users` paced at `think_s` offer while answers keep up (one request a
    task); None for closed-loop users (think time 0), whose rate is whatever comes back."""
    return users / think_s if think_s > 0 else None
