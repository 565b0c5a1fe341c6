"""Calibration (spec section 2, thesis eq. 3.3, 3.5, 3.6): bounds from samples, JSON, validation."""

from __future__ import annotations

import json
import math

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from balancer import (
    DEFAULT_DIS_AVEMAX,
    Calibration,
    LBHScheduler,
    TaskClass,
    calibrate,
    mean_distance,
    task_memory_from_json,
)


def test_mean_distance_is_the_mean_of_sample_distances():
    """Eq. 3.3: the mean of sqrt(m^2 + c^2) over the samples."""
    assert mean_distance([(0.3, 0.4), (0.6, 0.8), (0.0, 0.0)]) == pytest.approx(0.5)


def test_calibrate_from_idle_and_saturated_samples():
    """Dis_avemin from the idle set U1, Dis_avemax from the saturated set U2."""
    cal = calibrate(idle=[(0.1, 0.0), (0.3, 0.0)], saturated=[(0.6, 0.8), (0.8, 0.6)])
    assert (cal.dis_avemin, cal.dis_avemax) == pytest.approx((0.2, 1.0))
    assert cal.dis_ave == pytest.approx(0.6)


def test_calibrate_without_saturated_samples_uses_the_default():
    """No U2 samples: Dis_avemax is the configured default (DEFAULT_DIS_AVEMAX = 1.0)."""
    assert calibrate(idle=[(0.1, 0.1)]).dis_avemax == DEFAULT_DIS_AVEMAX == 1.0
    assert calibrate(idle=[(0.1, 0.1)], default_dis_avemax=0.9).dis_avemax == 0.9


def test_calibrate_refuses_saturated_samples_no_busier_than_idle():
    """A saturating run that did not load the nodes gives invalid bounds: ValueError."""
    with pytest.raises(ValueError, match="dis_avemin must be < dis_avemax"):
        calibrate(idle=[(0.5, 0.5)], saturated=[(0.2, 0.2)])


def test_no_samples_are_refused():
    """An empty sample set has no mean."""
    with pytest.raises(ValueError, match="at least one"):
        mean_distance([])


@pytest.mark.parametrize("sample", [(1.2, 0.0), (0.0, -0.1), (math.nan, 0.5)])
def test_samples_outside_the_plane_are_refused(sample):
    """Ratios must be within [0, 1]."""
    with pytest.raises(ValueError, match=r"within \[0, 1\]"):
        mean_distance([sample])


def test_malformed_samples_are_refused():
    """Samples must be (memory, cpu) pairs."""
    with pytest.raises(ValueError, match="pairs"):
        mean_distance([(0.1, 0.2, 0.3)])  # type: ignore[list-item]


def test_json_round_trip():
    """to_json then from_json gives the same calibration back."""
    cal = Calibration(0.123456789, 1.0987654321)
    assert Calibration.from_json(cal.to_json()) == cal


def test_json_is_a_versioned_object():
    """The file holds the two bounds and a format version."""
    assert json.loads(Calibration(0.2, 1.0).to_json()) == {
        "version": 1,
        "dis_avemin": 0.2,
        "dis_avemax": 1.0,
    }


@pytest.mark.parametrize(
    ("text", "message"),
    [
        ("{not json", "not valid JSON"),
        ("[0.2, 1.0]", "must be an object"),
        ('{"version": 2, "dis_avemin": 0.2, "dis_avemax": 1.0}', "version must be 1"),
        ('{"version": 1, "dis_avemin": 0.2}', "lacks the field 'dis_avemax'"),
        ('{"version": 1, "dis_avemin": "low", "dis_avemax": 1.0}', "must be numbers"),
        ('{"version": 1, "dis_avemin": 0.9, "dis_avemax": 0.5}', "dis_avemin must be <"),
    ],
)
def test_bad_calibration_json_is_refused(text, message):
    """Loading refuses anything but a valid calibration, with a message saying why."""
    with pytest.raises(ValueError, match=message):
        Calibration.from_json(text)


def test_scheduler_from_calibration():
    """A loaded calibration builds a scheduler with its bounds."""
    cal = Calibration.from_json(Calibration(0.25, 0.9).to_json())
    assert LBHScheduler.from_calibration(cal).calibration == cal


@settings(max_examples=300, deadline=None)
@given(st.floats(allow_nan=True), st.floats(allow_nan=True))
def test_calibration_accepts_exactly_the_valid_bounds(low, high):
    """Calibration(low, high) succeeds iff 0 <= low < high <= sqrt(2)."""
    valid = 0 <= low < high <= math.sqrt(2)  # False whenever NaN is involved
    if valid:
        assert Calibration(low, high).dis_ave == (low + high) / 2
    else:
        with pytest.raises(ValueError, match="dis_ave"):
            Calibration(low, high)


def test_task_memory_is_read_from_a_calibration_file() -> None:
    """The per-class needs of a calibration's JSON, as TaskClass -> MB."""
    text = json.dumps({"version": 1, "dis_avemin": 0.1, "dis_avemax": 1.0,
                       "task_memory_mb": {"RT": 0.5, "MCT": 2}})  # fmt: skip
    assert task_memory_from_json(text) == {TaskClass.RT: 0.5, TaskClass.MCT: 2.0}


def test_a_calibration_without_task_memory_has_none() -> None:
    """A file of bounds only holds no needs (None, not an empty table)."""
    assert task_memory_from_json(Calibration(0.1, 1.0).to_json()) is None


@pytest.mark.parametrize(
    ("figures", "names"),
    [
        ({"XT": 1.0}, "unknown task class 'XT'"),
        ({"RT": -1.0}, r"task_memory_mb\[RT\] must be finite and >= 0"),
        ({"DT": "big"}, r"task_memory_mb\[DT\] must be a number"),
        ({"MAT": True}, r"task_memory_mb\[MAT\] must be a number"),
        ([1.0], "task_memory_mb must be an object"),
    ],
)
def test_hostile_task_memory_is_refused_naming_the_class(figures: object, names: str) -> None:
    """An unknown class, a negative or non-numeric figure: ValueError naming the entry."""
    text = json.dumps({"task_memory_mb": figures})
    with pytest.raises(ValueError, match=names):
        task_memory_from_json(text)
