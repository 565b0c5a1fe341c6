"""The provider's service-time book: each node's peak EWMA of its tasks' service times."""

from __future__ import annotations

import math

import pytest

from provider.service_times import ServiceTimes


def test_a_node_with_no_finished_task_has_no_figure() -> None:
    """Only nodes that finished a task appear."""
    book = ServiceTimes(decay_s=10.0)
    book.observe("node-1", 0.2, at=10.0)
    assert book.at(10.0) == {"node-1": 0.2}


def test_the_first_sample_is_the_figure() -> None:
    """A node's first service time is taken as it is."""
    book = ServiceTimes(decay_s=10.0)
    book.observe("node-1", 0.7, at=3.0)
    assert book.at(3.0)["node-1"] == 0.7


def test_a_slower_sample_is_taken_at_once() -> None:
    """A sample above the figure replaces it (the peak), however soon after the last."""
    book = ServiceTimes(decay_s=10.0)
    book.observe("node-1", 0.02, at=1.0)
    book.observe("node-1", 2.0, at=1.0)
    assert book.at(1.0)["node-1"] == 2.0


def test_a_faster_sample_one_decay_later_keeps_one_over_e_of_the_old_figure() -> None:
    """A sample below the figure, decay_s after the last, keeps 1/e of the old figure."""
    book = ServiceTimes(decay_s=10.0)
    book.observe("node-1", 1.0, at=0.0)
    book.observe("node-1", 0.0, at=10.0)
    assert book.at(10.0)["node-1"] == pytest.approx(math.exp(-1.0))


def test_nodes_are_kept_apart() -> None:
    """A sample on one node leaves the others' figures alone."""
    book = ServiceTimes(decay_s=10.0)
    book.observe("node-1", 1.0, at=0.0)
    book.observe("node-2", 0.3, at=0.0)
    book.observe("node-2", 0.1, at=1.0)
    figures = book.at(1.0)
    assert 0.1 < figures["node-2"] < 0.3
    cheapest = figures["node-2"]  # node-1, not heard from for 1 s, drifts toward it
    assert figures["node-1"] == pytest.approx(cheapest + (1.0 - cheapest) * math.exp(-0.1))


def test_a_node_not_heard_from_drifts_toward_the_cheapest_figure() -> None:
    """Read later with no new sample, a slow node's figure nears the cheapest, never below."""
    book = ServiceTimes(decay_s=10.0)
    book.observe("slow", 2.0, at=0.0)
    book.observe("fast", 0.02, at=0.0)
    later = [book.at(t)["slow"] for t in (0.0, 10.0, 100.0)]
    assert later[0] == 2.0
    assert later[1] == pytest.approx(0.02 + 1.98 * math.exp(-1.0))
    assert 0.02 <= later[2] < 0.03
    assert book.at(100.0)["fast"] == 0.02


def test_a_negative_duration_counts_as_zero() -> None:
    """A clock stepping back between the slot and the end gives 0, not a negative figure."""
    book = ServiceTimes(decay_s=10.0)
    book.observe("node-1", -0.5, at=1.0)
    assert book.at(1.0)["node-1"] == 0.0


def test_a_negative_decay_is_refused() -> None:
    """decay_s below 0 is refused at construction."""
    with pytest.raises(ValueError, match="decay_s"):
        ServiceTimes(decay_s=-1.0)
