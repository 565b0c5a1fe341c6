"""Exponentially weighted moving average of a node's ratios (lbh-spec.md section 1)."""

from __future__ import annotations

import math


class Ewma:
    """s_t = alpha * x_t + (1 - alpha) * s_(t-1), seeded with the first reading.

    Seeding with the first reading (not with 0) keeps a freshly started or restarted node
    from looking idler than it is for the first few samples, which would route a burst to it.
    `alpha` = 1 follows the readings exactly; a small `alpha` reacts slowly.
    """

    __slots__ = ("_alpha", "_value")

    def __init__(self, alpha: float) -> None:
        alpha = float(alpha)
        if not (math.isfinite(alpha) and 0.0 < alpha <= 1.0):
            raise ValueError(f"alpha must be within (0, 1], got {alpha}")
        self._alpha = alpha
        self._value: float | None = None

    @property
    def alpha(self) -> float:
        return self._alpha

    @property
    def value(self) -> float | None:
        """The smoothed value, None before the first reading (or after `reset`)."""
        return self._value

    def update(self, reading: float) -> float:
        """Fold one reading in and return the new smoothed value."""
        reading = float(reading)
        if not math.isfinite(reading):
            # One NaN would poison every later value: refuse it where it enters.
            raise ValueError(f"reading must be finite, got {reading}")
        if self._value is None:
            self._value = reading
        else:
            self._value = self._alpha * reading + (1.0 - self._alpha) * self._value
        return self._value

    def reset(self) -> None:
        """Forget the history: the next reading seeds the average again."""
        self._value = None
