"""What a cell leaves out: the counted requests still under way when its N-th ends."""

from __future__ import annotations

from loadtests.in_flight import InFlight


def test_requests_begun_and_not_ended_are_left_with_their_ages() -> None:
    """Two of three requests still under way at 10 s: their ages, oldest first."""
    book = InFlight()
    first = book.began(3.0)
    book.began(4.0)
    book.began(6.0)
    book.ended(first)
    assert book.ages_at(10.0) == [6.0, 4.0]


def test_nothing_under_way_leaves_nothing() -> None:
    """Every request ended: none left."""
    book = InFlight()
    book.ended(book.began(1.0))
    assert book.ages_at(5.0) == []
