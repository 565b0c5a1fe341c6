"""The logs subscription's filter: Geth's matching rules and its refusals."""

from __future__ import annotations

import pytest
from hypothesis import given
from hypothesis import strategies as st

from gateway.log_filter import FilterError, LogFilter, parse_log_filter

A = "0x" + "aa" * 20
B = "0x" + "bb" * 20
T1 = "0x" + "11" * 32
T2 = "0x" + "22" * 32
T3 = "0x" + "33" * 32


def log_of(address: str, *topics: str) -> dict[str, object]:
    return {"address": address, "topics": list(topics), "data": "0x"}


def test_no_filter_matches_every_log() -> None:
    """An absent filter matches any log, whatever its address and topics."""
    assert parse_log_filter(None).matches(log_of(A))
    assert parse_log_filter({}).matches(log_of(B, T1, T2))


def test_address_list_is_an_or() -> None:
    """A list of addresses matches a log of any one of them, and no other."""
    found = parse_log_filter({"address": [A, B]})
    assert found.matches(log_of(A))
    assert found.matches(log_of(B))
    assert not found.matches(log_of("0x" + "cc" * 20))


def test_address_compares_without_case() -> None:
    """A checksummed address matches the node's lower-case one."""
    assert parse_log_filter({"address": A.upper().replace("0X", "0x")}).matches(log_of(A))


def test_topic_positions_are_and_alternatives_or() -> None:
    """Each position must match; a list at a position is an OR."""
    found = parse_log_filter({"topics": [T1, [T2, T3]]})
    assert found.matches(log_of(A, T1, T3))
    assert not found.matches(log_of(A, T2, T3))
    assert not found.matches(log_of(A, T1, T1))


def test_null_and_empty_positions_match_anything() -> None:
    """null, [] and a list holding null are wildcards at their position."""
    for wildcard in (None, [], [T1, None]):
        assert parse_log_filter({"topics": [wildcard, T2]}).matches(log_of(A, T3, T2))


def test_more_positions_than_topics_does_not_match() -> None:
    """A filter naming a position the log does not have never matches it (as Geth)."""
    assert not parse_log_filter({"topics": [T1, None]}).matches(log_of(A, T1))


@pytest.mark.parametrize(
    ("value", "field"),
    [
        ("not an object", "filter"),
        ({"address": "0x12"}, "address"),
        ({"address": [A, 5]}, "address[1]"),
        ({"topics": "0x11"}, "topics"),
        ({"topics": [None, "0xzz"]}, "topics[1]"),
        ({"topics": [[T1, "short"]]}, "topics[0][1]"),
        ({"topics": [T1] * 5}, "topics"),
        ({"fromBlock": "0x1"}, "fromBlock"),
    ],
)
def test_hostile_filters_name_the_field(value: object, field: str) -> None:
    """A malformed filter is refused with the member at fault named."""
    with pytest.raises(FilterError) as refused:
        parse_log_filter(value)
    assert refused.value.field == field


hashes = st.sampled_from([T1, T2, T3])
positions = st.one_of(st.none(), hashes, st.lists(hashes, max_size=3))


@given(
    topics=st.lists(hashes, max_size=4),
    wanted=st.lists(positions, max_size=4),
)
def test_matching_is_geths_rule(topics: list[str], wanted: list[object]) -> None:
    """A log matches exactly when every filter position is a wildcard or holds its topic."""
    found = parse_log_filter({"topics": wanted})
    expected = len(wanted) <= len(topics) and all(
        w is None or w == [] or (topic in w if isinstance(w, list) else topic == w)
        for w, topic in zip(wanted, topics, strict=False)
    )
    assert found.matches(log_of(A, *topics)) is expected


def test_a_log_without_topics_member_does_not_match_a_topic_filter() -> None:
    """A garbled log (no topics list) is not matched by a topic filter."""
    assert not LogFilter(topics=(frozenset({T1}),)).matches({"address": A})
