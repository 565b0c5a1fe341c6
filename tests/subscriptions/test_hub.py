"""The subscription hub: who is notified of what, the limits per key and per socket."""

from __future__ import annotations

import json
from typing import Any

import pytest

from ethgw_wire.chain_heads import ChainHead
from gateway.log_filter import parse_log_filter
from gateway.subscriptions import SubscriptionHub, SubscriptionKind, SubscriptionLimitError

A = "0x" + "aa" * 20
T1 = "0x" + "11" * 32


def head(number: int, logs: list[dict[str, Any]] | None = None) -> ChainHead:
    return ChainHead(
        number=number,
        hash=f"0x{number:064x}",
        parent_hash=f"0x{number - 1:064x}",
        header={"number": hex(number)},
        logs=logs or [],
        source="node-1",
    )


def drained(session: Any) -> list[dict[str, Any]]:
    messages = []
    while not session.outbox.empty():
        messages.append(json.loads(session.outbox.get_nowait().text))
    return messages


def results(session: Any) -> list[Any]:
    return [m["params"]["result"] for m in drained(session)]


def test_new_heads_get_each_block_once() -> None:
    """A newHeads subscription gets each block's header once, a repeat dropped."""
    hub = SubscriptionHub(per_key=4, outbox_size=10)
    session = hub.open("k1")
    hub.subscribe(session, SubscriptionKind.NEW_HEADS)
    for number in (5, 6, 6, 5, 7):
        hub.deliver_head(head(number))
    assert [r["number"] for r in results(session)] == ["0x5", "0x6", "0x7"]


def test_logs_go_to_matching_filters_only() -> None:
    """A logs subscription gets the block's logs its filter matches, one notification each."""
    hub = SubscriptionHub(per_key=4, outbox_size=10)
    session = hub.open("k1")
    hub.subscribe(session, SubscriptionKind.LOGS, parse_log_filter({"topics": [T1]}))
    wanted = {"address": A, "topics": [T1], "logIndex": "0x0"}
    other = {"address": A, "topics": ["0x" + "22" * 32], "logIndex": "0x1"}
    hub.deliver_head(head(1, [wanted, other]))
    assert results(session) == [wanted]


def test_pending_hashes_reach_only_their_key() -> None:
    """newPendingTransactions of one key never hears of another key's transaction."""
    hub = SubscriptionHub(per_key=4, outbox_size=10)
    mine, theirs = hub.open("k1"), hub.open("k2")
    hub.subscribe(mine, SubscriptionKind.PENDING)
    hub.subscribe(theirs, SubscriptionKind.PENDING)
    hub.deliver_pending("k1", "0xabc")
    assert results(mine) == ["0xabc"]
    assert results(theirs) == []


def test_subscriptions_are_bounded_per_key_across_sockets() -> None:
    """A key's subscriptions count over all its sockets; one past the limit is refused."""
    hub = SubscriptionHub(per_key=2, outbox_size=10)
    first, second = hub.open("k1"), hub.open("k1")
    hub.subscribe(first, SubscriptionKind.NEW_HEADS)
    hub.subscribe(second, SubscriptionKind.NEW_HEADS)
    with pytest.raises(SubscriptionLimitError):
        hub.subscribe(second, SubscriptionKind.PENDING)
    hub.subscribe(hub.open("k2"), SubscriptionKind.PENDING)  # another key is not affected


def test_closing_a_socket_frees_its_subscriptions() -> None:
    """A closed socket's subscriptions no longer count against its key."""
    hub = SubscriptionHub(per_key=1, outbox_size=10)
    session = hub.open("k1")
    hub.subscribe(session, SubscriptionKind.NEW_HEADS)
    hub.close(session)
    hub.subscribe(hub.open("k1"), SubscriptionKind.NEW_HEADS)
    assert hub.subscriptions_of("k1") == 1


def test_unsubscribe_stops_notifications() -> None:
    """After eth_unsubscribe the subscription gets nothing; unknown ids answer False."""
    hub = SubscriptionHub(per_key=4, outbox_size=10)
    session = hub.open("k1")
    subscription = hub.subscribe(session, SubscriptionKind.NEW_HEADS)
    assert hub.unsubscribe(session, subscription.id)
    assert not hub.unsubscribe(session, subscription.id)
    hub.deliver_head(head(1))
    assert drained(session) == []


def test_a_full_outbox_marks_only_that_socket_slow() -> None:
    """A socket whose outbox is full is marked overflowed; the others still get blocks."""
    hub = SubscriptionHub(per_key=4, outbox_size=2)
    slow, fast = hub.open("k1"), hub.open("k2")
    hub.subscribe(slow, SubscriptionKind.NEW_HEADS)
    hub.subscribe(fast, SubscriptionKind.NEW_HEADS)
    for number in (1, 2, 3):
        hub.deliver_head(head(number))
        drained(fast)
    assert slow.overflowed.is_set()
    assert not fast.overflowed.is_set()
    hub.deliver_head(head(4))
    assert [r["number"] for r in results(fast)] == ["0x4"]


def test_revoking_a_key_marks_its_sockets_to_close_and_no_other() -> None:
    """end_sessions_of marks every socket of the revoked keys, and leaves the others open."""
    hub = SubscriptionHub(per_key=10, outbox_size=10)
    first, second, other = hub.open("revoked"), hub.open("revoked"), hub.open("kept")
    assert hub.end_sessions_of({"revoked"}) == 2
    assert first.revoked.is_set()
    assert second.revoked.is_set()
    assert not other.revoked.is_set()
