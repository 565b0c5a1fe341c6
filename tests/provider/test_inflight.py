"""The provider's in-flight book: counts now, and the count a node had at a past moment."""

from __future__ import annotations

from provider.inflight import InflightBook


def test_counts_follow_starts_and_finishes() -> None:
    """A node's count now is its starts less its finishes."""
    book = InflightBook(keep_s=15.0)
    for at in (1.0, 2.0, 3.0):
        book.started("node-1", at)
    book.finished("node-1", 4.0)
    assert book.counts["node-1"] == 2


def test_the_count_at_a_past_moment_leaves_out_later_changes() -> None:
    """At a moment between changes, the count is the one after the last change before it."""
    book = InflightBook(keep_s=15.0)
    book.started("node-1", 10.0)
    book.started("node-1", 11.0)
    book.finished("node-1", 12.0)
    assert [book.at("node-1", t) for t in (9.0, 10.5, 11.5, 12.5)] == [0, 1, 2, 1]


def test_a_moment_not_yet_past_answers_the_count_now() -> None:
    """A sample time ahead of this clock (skew) gets the live count: no correction."""
    book = InflightBook(keep_s=15.0)
    book.started("node-1", 10.0)
    assert book.at("node-1", 99.0) == 1


def test_a_node_never_used_had_nothing_in_flight() -> None:
    """An unknown node counts 0 at any moment."""
    assert InflightBook(keep_s=15.0).at("node-9", 5.0) == 0


def test_the_count_within_the_history_survives_pruning() -> None:
    """After many changes age out, a moment within keep_s still gets its exact count."""
    book = InflightBook(keep_s=1.0)
    for step in range(1_000):
        book.started("node-1", step * 0.01)  # 10 s of starts: most of them age out
    assert book.at("node-1", 9.505) == 951
    assert book.counts["node-1"] == 1_000


def test_a_clock_stepping_back_keeps_the_latest_count() -> None:
    """A change noted at an earlier time than the one before still counts as the latest."""
    book = InflightBook(keep_s=15.0)
    book.started("node-1", 10.0)
    book.started("node-1", 9.0)
    assert book.at("node-1", 10.0) == 2


def test_sample_times_give_each_node_its_own_count() -> None:
    """at_samples answers per node, each at its own report's sample time."""
    book = InflightBook(keep_s=15.0)
    book.started("node-1", 1.0)
    book.started("node-2", 1.0)
    book.started("node-2", 3.0)
    assert book.at_samples([("node-1", 2.0), ("node-2", 2.0)]) == {"node-1": 1, "node-2": 1}
