"""The EWMA that smooths a node's memory and CPU ratios (lbh-spec.md section 1)."""

from __future__ import annotations

import math

import pytest
from hypothesis import given
from hypothesis import strategies as st

from geth_cluster.smoothing import Ewma

unit = st.floats(min_value=0.0, max_value=1.0)


def test_first_reading_seeds_the_average() -> None:
    """The first reading is the average itself, not a pull from zero."""
    ewma = Ewma(0.5)
    assert ewma.value is None
    assert ewma.update(0.8) == 0.8


def test_update_weights_the_newest_reading_by_alpha() -> None:
    """s = alpha * x + (1 - alpha) * s_prev, for a sequence of readings."""
    ewma = Ewma(0.5)
    ewma.update(0.0)
    assert ewma.update(1.0) == pytest.approx(0.5)
    assert ewma.update(1.0) == pytest.approx(0.75)
    assert Ewma(0.25).update(0.4) == pytest.approx(0.4)
    slow = Ewma(0.25)
    slow.update(0.0)
    assert slow.update(1.0) == pytest.approx(0.25)


def test_alpha_one_follows_the_readings() -> None:
    """With alpha = 1 the average is the latest reading."""
    ewma = Ewma(1.0)
    for reading in (0.3, 0.9, 0.1):
        assert ewma.update(reading) == reading


def test_reset_makes_the_next_reading_the_seed() -> None:
    """After reset the history is gone: the next reading is the average."""
    ewma = Ewma(0.5)
    ewma.update(0.9)
    ewma.reset()
    assert ewma.value is None
    assert ewma.update(0.1) == 0.1


@pytest.mark.parametrize("alpha", [0.0, -0.1, 1.01, math.nan, math.inf])
def test_alpha_outside_zero_one_is_refused(alpha: float) -> None:
    """alpha must be within (0, 1]."""
    with pytest.raises(ValueError, match="alpha"):
        Ewma(alpha)


@pytest.mark.parametrize("reading", [math.nan, math.inf])
def test_non_finite_reading_is_refused(reading: float) -> None:
    """A NaN or infinite reading raises instead of poisoning later values."""
    ewma = Ewma(0.5)
    ewma.update(0.2)
    with pytest.raises(ValueError, match="finite"):
        ewma.update(reading)
    assert ewma.value == 0.2


@given(alpha=st.floats(min_value=0.01, max_value=1.0), readings=st.lists(unit, min_size=1))
def test_average_stays_between_the_smallest_and_largest_reading(
    alpha: float, readings: list[float]
) -> None:
    """The average never leaves the range of its readings, hence never leaves [0, 1]."""
    ewma = Ewma(alpha)
    for reading in readings:
        value = ewma.update(reading)
    assert min(readings) - 1e-12 <= value <= max(readings) + 1e-12
