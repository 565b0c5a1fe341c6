"""The platform events: decoding the token's logs into typed events, their ids, and who
sees what (ethgw_wire.events)."""

from __future__ import annotations

from typing import Any

import pytest
from eth_abi.abi import encode
from hypothesis import given
from hypothesis import strategies as st

from ethgw_wire.artifacts import load_artifact
from ethgw_wire.events import (
    EVENT_KINDS,
    EVERYTHING,
    MAX_EVENTS_PER_PAGE,
    ZERO_ADDRESS,
    ChainEvent,
    EventKind,
    EventPosition,
    MintEvent,
    ProjectPublishedEvent,
    ProjectPurchasedEvent,
    TransferEvent,
    UndecodableLogError,
    Viewer,
    decode_log,
    decode_logs,
    event_json,
    page_end,
    unknown_parties,
    visible_to,
)

ALICE = "0x" + "a1" * 20
BOB = "0x" + "b0" * 20
CAROL = "0x" + "c0" * 20
TX = "0x" + "77" * 32
KIND = {k.kind: k for k in EVENT_KINDS}


def log_of(
    kind: EventKind, values: dict[str, Any], block: int = 7, index: int = 2
) -> dict[str, Any]:
    """A node's log object of `kind` with these argument values."""
    topics = [kind.topic] + [
        "0x" + encode([a.abi_type], [values[a.field]]).hex() for a in kind.args if a.indexed
    ]
    plain = [a for a in kind.args if not a.indexed]
    data = encode([a.abi_type for a in plain], [values[a.field] for a in plain])
    return {
        "address": "0x" + "11" * 20,
        "topics": topics,
        "data": "0x" + data.hex(),
        "blockNumber": hex(block),
        "logIndex": hex(index),
        "transactionHash": TX,
        "removed": False,
    }


def base(block: int = 7, index: int = 2) -> dict[str, Any]:
    return {"id": f"{block}-{index}", "block_number": block, "log_index": index, "tx_hash": TX}


def test_every_kind_is_an_event_of_the_compiled_contract() -> None:
    """Each kind's name, argument types and indexed flags are those of PlatformToken's ABI."""
    abi = load_artifact("PlatformToken").abi
    events = {e["name"]: e for e in abi if e.get("type") == "event"}
    for kind in EVENT_KINDS:
        inputs = events[kind.event]["inputs"]
        assert [(i["type"], i["indexed"]) for i in inputs] == [
            (a.abi_type, a.indexed) for a in kind.args
        ], kind.event


def test_a_transfer_log_decodes_with_its_id_and_checksummed_addresses() -> None:
    """Transfer(from, to, value) at block 7, log 2: a transfer event with id "7-2"."""
    event = decode_log(log_of(KIND["transfer"], {"from": ALICE, "to": BOB, "value": 5}))
    assert isinstance(event, TransferEvent)
    assert event.id == "7-2"
    assert (event.from_address.lower(), event.to.lower(), event.value) == (ALICE, BOB, 5)
    assert event.from_address != ALICE  # checksummed
    assert event_json(event)["from"] == event.from_address


def test_a_project_published_log_decodes_every_argument() -> None:
    """The indexed id, publisher and hash come from the topics; the rest from the data."""
    digest = bytes(range(32))
    values = {
        "project_id": 3,
        "publisher": CAROL,
        "name": "Fund A",
        "project_hash": digest,
        "time": 1_700_000_000,
        "price": 20,
        "reward": 100,
    }
    event = decode_log(log_of(KIND["project_published"], values))
    assert isinstance(event, ProjectPublishedEvent)
    assert (event.project_id, event.name, event.project_hash) == (3, "Fund A", "0x" + digest.hex())
    assert (event.time, event.price, event.reward) == (1_700_000_000, 20, 100)


def test_a_project_purchased_log_decodes_every_argument() -> None:
    """purchaseId, projectId and buyer are topics; publisher, price and time data."""
    values = {
        "purchase_id": 9,
        "project_id": 3,
        "buyer": BOB,
        "publisher": CAROL,
        "price": 20,
        "time": 5,
    }
    event = decode_log(log_of(KIND["project_purchased"], values))
    assert isinstance(event, ProjectPurchasedEvent)
    assert (event.purchase_id, event.project_id, event.price, event.time) == (9, 3, 20, 5)
    assert (str(event.buyer).lower(), event.publisher.lower()) == (BOB, CAROL)


def test_a_log_of_another_event_is_not_a_platform_event() -> None:
    """A log whose topic is no kind's (an Approval, another contract's) decodes to None."""
    log = log_of(KIND["mint"], {"to": ALICE, "value": 1})
    log["topics"][0] = "0x" + "00" * 32
    assert decode_log(log) is None


def test_a_log_with_a_kinds_topic_that_does_not_fit_is_refused() -> None:
    """The right topic with a topic missing, or short data: UndecodableLogError."""
    log = log_of(KIND["mint"], {"to": ALICE, "value": 1})
    with pytest.raises(UndecodableLogError):
        decode_log({**log, "topics": log["topics"][:1]})
    with pytest.raises(UndecodableLogError):
        decode_log({**log, "data": "0x01"})


def test_logs_decode_in_chain_order_without_removed_ones() -> None:
    """decode_logs sorts by (block, log index) and skips logs a reorg removed."""
    mint = KIND["mint"]
    logs = [
        log_of(mint, {"to": ALICE, "value": 1}, block=9, index=0),
        log_of(mint, {"to": ALICE, "value": 2}, block=8, index=3),
        {**log_of(mint, {"to": ALICE, "value": 3}, block=8, index=1), "removed": True},
    ]
    assert [e.id for e in decode_logs(logs)] == ["8-3", "9-0"]


def test_event_ids_parse_and_order_as_the_chain() -> None:
    """ "12-3" is block 12, log 3; it sorts after "9-40" and before "12-10"."""
    assert EventPosition.parse("12-3") == EventPosition(12, 3)
    assert EventPosition.parse("9-40") < EventPosition.parse("12-3") < EventPosition.parse("12-10")
    assert EventPosition.before_block(12) < EventPosition.parse("12-0")


@pytest.mark.parametrize("text", ["", "12", "12-", "-3", "a-1", "1-2-3", " 1-2", "1.0-2"])
def test_what_is_not_an_event_id_is_refused(text: str) -> None:
    """Anything but <digits>-<digits> raises ValueError."""
    with pytest.raises(ValueError, match="event id"):
        EventPosition.parse(text)


def test_a_page_stops_at_the_block_where_it_passes_the_event_limit() -> None:
    """Over MAX_EVENTS_PER_PAGE events, the page ends with the block of the first one past
    the limit (whole blocks only); under it, at the range's last block."""
    events = [
        MintEvent(**base(block, index), to=ALICE, value=1)
        for block in range(10, 13)
        for index in range(MAX_EVENTS_PER_PAGE // 2 + 1)
    ]
    assert page_end(events, 50) == 11
    assert page_end(events[:MAX_EVENTS_PER_PAGE], 50) == 50


# -- who sees what -------------------------------------------------------------------------


def transfer(source: str, to: str) -> TransferEvent:
    return TransferEvent.model_validate({**base(), "from": source, "to": to, "value": 1})


def purchase(buyer: str, publisher: str) -> ProjectPurchasedEvent:
    return ProjectPurchasedEvent(
        **base(), purchase_id=1, project_id=1, buyer=buyer, publisher=publisher, price=1, time=1
    )


def test_an_admin_key_sees_every_event_whole() -> None:
    """EVERYTHING sees a transfer between strangers and a purchase with its buyer."""
    for event in (transfer(ALICE, BOB), purchase(ALICE, BOB)):
        assert visible_to(event, EVERYTHING) == event


def test_a_user_key_sees_a_transfer_only_when_it_owns_a_side() -> None:
    """Alice's key sees transfers from and to her account, not one between others."""
    alice = Viewer.of_accounts([ALICE.upper().replace("0X", "0x")])
    assert visible_to(transfer(ALICE, BOB), alice) is not None
    assert visible_to(transfer(BOB, ALICE), alice) is not None
    assert visible_to(transfer(BOB, CAROL), alice) is None


def test_the_zero_address_makes_no_key_a_party() -> None:
    """A key that somehow lists the zero address still does not see a stranger's mint."""
    viewer = Viewer.of_accounts([ZERO_ADDRESS])
    assert visible_to(transfer(ZERO_ADDRESS, BOB), viewer) is None


def test_a_purchase_is_public_but_names_its_buyer_only_to_the_parties() -> None:
    """Every key sees a purchase; the buyer's and the publisher's keys see the buyer, any
    other key sees it null."""
    event = purchase(ALICE, CAROL)
    assert visible_to(event, Viewer.of_accounts([ALICE])) == event
    assert visible_to(event, Viewer.of_accounts([CAROL])) == event
    stranger = visible_to(event, Viewer.of_accounts([BOB]))
    assert isinstance(stranger, ProjectPurchasedEvent)
    assert stranger.buyer is None
    assert stranger.model_copy(update={"buyer": ALICE}) == event


def test_a_published_project_is_seen_by_every_key() -> None:
    """A project published is the public catalogue: shown whole to a key with no account."""
    event = ProjectPublishedEvent(
        **base(),
        project_id=1,
        publisher=ALICE,
        name="x",
        project_hash="0x" + "00" * 32,
        time=1,
        price=1,
        reward=1,
    )
    assert visible_to(event, Viewer.of_accounts([])) == event


addresses = st.sampled_from([ALICE, BOB, CAROL, ZERO_ADDRESS])


@given(addresses, addresses, st.sets(addresses))
def test_a_user_key_sees_a_private_event_exactly_when_it_owns_a_party(
    source: str, to: str, owned: set[str]
) -> None:
    """For any transfer and any accounts: shown whole iff a non-zero side is owned, else
    hidden."""
    event: ChainEvent = transfer(source, to)
    shown = visible_to(event, Viewer.of_accounts(owned))
    owns = bool(({source, to} - {ZERO_ADDRESS}) & owned)
    assert shown == (event if owns else None)


def test_unknown_parties_are_the_named_accounts_a_viewer_does_not_own() -> None:
    """A transfer from alice to bob is unknown to bob's viewer by alice only; nothing is
    unknown to an admin; the zero address never is."""
    events = [transfer(ALICE, BOB), transfer(ZERO_ADDRESS, BOB)]
    assert unknown_parties(events, Viewer.of_accounts([BOB])) == {ALICE}
    assert unknown_parties(events, EVERYTHING) == set()
