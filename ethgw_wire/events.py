"""The platform events: the token contract's logs that the app follows, as typed events.

Each event kind is declared once below (EVENT_KINDS): its name in the stream, the
contract's event it decodes, and its model. The provider decodes the logs of a block range
with `decode_log` (the `events.range` operation); the gateway streams them
(`GET /api/v1/events`). An event's id is `"<block>-<logIndex>"`, so ids sort as the chain
does and a client resumes after one.

Who sees what is one rule, `visible_to`, used by both: an admin key (or the platform)
sees every event; a user key sees the public ones (projects published; purchases as a
fact, the buyer left out) and every event naming one of its own accounts.
"""

from __future__ import annotations

import re
from collections.abc import Iterable, Mapping, Sequence
from dataclasses import dataclass
from typing import Annotated, Any, ClassVar, Literal, NamedTuple

from eth_abi.abi import decode
from eth_abi.exceptions import DecodingError
from eth_utils.address import to_checksum_address
from eth_utils.crypto import keccak
from pydantic import BaseModel, ConfigDict, Field

ZERO_ADDRESS = "0x" + "00" * 20

# A page of events stops at the end of the block where it passes this many events, so its
# result stays well under the largest result a provider publishes (ETHGW_KAFKA_MAX_RESULT_BYTES).
MAX_EVENTS_PER_PAGE = 1000

# What an event id looks like, "<block>-<logIndex>" (both decimal).
EVENT_ID_PATTERN = r"^[0-9]{1,18}-[0-9]{1,9}$"
_EVENT_ID = re.compile(EVENT_ID_PATTERN)


class EventPosition(NamedTuple):
    """Where a log is on the chain; positions order events as the chain does."""

    block: int
    log_index: int

    @property
    def event_id(self) -> str:
        return f"{self.block}-{self.log_index}"

    @classmethod
    def parse(cls, event_id: str) -> EventPosition:
        """The position an event id names; ValueError when it is not one."""
        if not _EVENT_ID.match(event_id):
            raise ValueError(f"{event_id!r} is not an event id (<block>-<logIndex>)")
        block, _, index = event_id.partition("-")
        return cls(int(block), int(index))

    @classmethod
    def before_block(cls, block: int) -> EventPosition:
        """The position just before the first event of `block`."""
        return cls(block, -1)


class ChainEvent(BaseModel):
    """What every platform event has: its id, kind and where it was logged."""

    model_config = ConfigDict(frozen=True, extra="forbid", populate_by_name=True)

    # Public events are shown to every key (possibly trimmed by `for_public`); the others
    # only to the keys whose accounts they name.
    public: ClassVar[bool] = False

    id: str
    kind: str
    block_number: int
    log_index: int
    tx_hash: str

    @property
    def position(self) -> EventPosition:
        return EventPosition(self.block_number, self.log_index)

    def parties(self) -> tuple[str, ...]:
        """The accounts it names, whose owners see it in full."""
        return ()

    def for_public(self) -> ChainEvent:
        """What a key that owns none of its parties sees of a public event."""
        return self


class TransferEvent(ChainEvent):
    """Tokens moved (ERC-20 Transfer): also a mint, a reward or a raise by setBalance
    (from the zero address), a burn or a cut (to the zero address), a purchase's payment."""

    kind: Literal["transfer"] = "transfer"
    from_address: str = Field(alias="from")
    to: str
    value: int

    def parties(self) -> tuple[str, ...]:
        return (self.from_address, self.to)


class MintEvent(ChainEvent):
    """The admin minted tokens to an account."""

    kind: Literal["mint"] = "mint"
    to: str
    value: int

    def parties(self) -> tuple[str, ...]:
        return (self.to,)


class BurnEvent(ChainEvent):
    """The admin burned tokens of an account."""

    kind: Literal["burn"] = "burn"
    from_address: str = Field(alias="from")
    value: int

    def parties(self) -> tuple[str, ...]:
        return (self.from_address,)


class ProjectPublishedEvent(ChainEvent):
    """A project was published (public: the catalogue every key reads at GET /projects)."""

    public: ClassVar[bool] = True

    kind: Literal["project_published"] = "project_published"
    project_id: int
    publisher: str
    name: str
    project_hash: str
    time: int
    price: int
    reward: int

    def parties(self) -> tuple[str, ...]:
        return (self.publisher,)


class ProjectPurchasedEvent(ChainEvent):
    """A project was bought. Public as a fact; the buyer is named only to the keys of the
    buyer and of the publisher (and to admin keys), `null` to the others."""

    public: ClassVar[bool] = True

    kind: Literal["project_purchased"] = "project_purchased"
    purchase_id: int
    project_id: int
    buyer: str | None
    publisher: str
    price: int
    time: int

    def parties(self) -> tuple[str, ...]:
        return (self.publisher,) if self.buyer is None else (self.buyer, self.publisher)

    def for_public(self) -> ChainEvent:
        return self.model_copy(update={"buyer": None})


PlatformEvent = Annotated[
    TransferEvent | MintEvent | BurnEvent | ProjectPublishedEvent | ProjectPurchasedEvent,
    Field(discriminator="kind"),
]


@dataclass(frozen=True)
class EventArg:
    """One argument of a contract event: its ABI type, whether it is indexed (a topic),
    and the model's field it fills."""

    abi_type: str
    indexed: bool
    field: str


@dataclass(frozen=True)
class EventKind:
    """One kind of platform event: the contract event it decodes, and its model."""

    kind: str
    event: str  # the contract's event name
    args: tuple[EventArg, ...]
    model: type[ChainEvent]

    @property
    def signature(self) -> str:
        return f"{self.event}({','.join(a.abi_type for a in self.args)})"

    @property
    def topic(self) -> str:
        """topic0 of its logs: the keccak of the signature."""
        return "0x" + keccak(text=self.signature).hex()


def _arg(abi_type: str, field: str, indexed: bool = False) -> EventArg:
    return EventArg(abi_type, indexed, field)


# The events of contracts/PlatformToken.sol the stream carries (docs/contracts.md,
# "Events"); the others (Approval, BalanceSet, the owner's parameter changes) are not
# platform events: a BalanceSet's change of supply is in its Transfer from or to zero.
EVENT_KINDS: tuple[EventKind, ...] = (
    EventKind(
        "transfer",
        "Transfer",
        (_arg("address", "from", True), _arg("address", "to", True), _arg("uint256", "value")),
        TransferEvent,
    ),
    EventKind("mint", "Mint", (_arg("address", "to", True), _arg("uint256", "value")), MintEvent),
    EventKind("burn", "Burn", (_arg("address", "from", True), _arg("uint256", "value")), BurnEvent),
    EventKind(
        "project_published",
        "ProjectPublished",
        (
            _arg("uint256", "project_id", True),
            _arg("address", "publisher", True),
            _arg("string", "name"),
            _arg("bytes32", "project_hash", True),
            _arg("uint64", "time"),
            _arg("uint256", "price"),
            _arg("uint256", "reward"),
        ),
        ProjectPublishedEvent,
    ),
    EventKind(
        "project_purchased",
        "ProjectPurchased",
        (
            _arg("uint256", "purchase_id", True),
            _arg("uint256", "project_id", True),
            _arg("address", "buyer", True),
            _arg("address", "publisher"),
            _arg("uint256", "price"),
            _arg("uint64", "time"),
        ),
        ProjectPurchasedEvent,
    ),
)
EVENT_KIND_NAMES: tuple[str, ...] = tuple(k.kind for k in EVENT_KINDS)
_BY_TOPIC: dict[str, EventKind] = {k.topic: k for k in EVENT_KINDS}
# The topics an eth_getLogs filter asks for: any of the kinds' (an OR in position 0).
EVENT_TOPICS: tuple[str, ...] = tuple(_BY_TOPIC)


class UndecodableLogError(ValueError):
    """A log with a platform event's topic whose content does not decode as that event."""


def decode_log(log: Mapping[str, Any]) -> ChainEvent | None:
    """The platform event a log of the token is (a node's eth_getLogs object), None when
    its topic is none of EVENT_KINDS; UndecodableLogError when it has one but does not fit."""
    topics = [str(t).lower() for t in log.get("topics") or ()]
    kind = _BY_TOPIC.get(topics[0]) if topics else None
    if kind is None:
        return None
    indexed = [a for a in kind.args if a.indexed]
    plain = [a for a in kind.args if not a.indexed]
    if len(topics) != 1 + len(indexed):
        raise UndecodableLogError(f"{kind.event} log with {len(topics)} topics")
    try:
        values = {
            a.field: decode([a.abi_type], bytes.fromhex(t[2:]))[0]
            for a, t in zip(indexed, topics[1:], strict=True)
        }
        data = bytes.fromhex(str(log.get("data", "0x")).removeprefix("0x"))
        decoded = decode([a.abi_type for a in plain], data)
        values.update({a.field: v for a, v in zip(plain, decoded, strict=True)})
        block, index = int(log["blockNumber"], 16), int(log["logIndex"], 16)
    except (DecodingError, ValueError, KeyError, TypeError) as error:
        raise UndecodableLogError(f"{kind.event} log does not decode: {error}") from None
    fields = {name: _json_value(value) for name, value in values.items()}
    position = EventPosition(block, index)
    return kind.model.model_validate(
        {
            **fields,
            "id": position.event_id,
            "kind": kind.kind,
            "block_number": block,
            "log_index": index,
            "tx_hash": str(log.get("transactionHash")),
        }
    )


def _json_value(value: Any) -> Any:
    if isinstance(value, bytes):
        return "0x" + value.hex()
    if isinstance(value, str) and value.startswith("0x") and len(value) == 42:
        return to_checksum_address(value)
    return value


def decode_logs(logs: Iterable[Mapping[str, Any]]) -> list[ChainEvent]:
    """The platform events among a node's logs, in chain order; removed logs are skipped."""
    events = [e for log in logs if not log.get("removed") and (e := decode_log(log)) is not None]
    return sorted(events, key=lambda e: e.position)


def page_end(events: Sequence[ChainEvent], last_block: int) -> int:
    """The last block a page of `events` (in chain order, up to `last_block`) covers: the
    block where it passes MAX_EVENTS_PER_PAGE events, or `last_block`. At least one whole
    block, however many events it has."""
    if len(events) <= MAX_EVENTS_PER_PAGE:
        return last_block
    return events[MAX_EVENTS_PER_PAGE].block_number


def event_json(event: ChainEvent) -> dict[str, Any]:
    """An event as the API shows it (`from`, not `from_address`)."""
    return event.model_dump(mode="json", by_alias=True)


# -- who sees what ----------------------------------------------------------------------


@dataclass(frozen=True)
class Viewer:
    """What a key may see: everything (an admin key, the platform), or the public events
    and those naming one of `accounts` (its own, as ethgw.accounts records them)."""

    everything: bool
    accounts: frozenset[str] = frozenset()

    @classmethod
    def of_accounts(cls, accounts: Iterable[str]) -> Viewer:
        return cls(False, frozenset(a.lower() for a in accounts))

    def owns_any(self, addresses: Sequence[str]) -> bool:
        return any(a.lower() in self.accounts for a in addresses if a.lower() != ZERO_ADDRESS)


EVERYTHING = Viewer(everything=True)


def visible_to(event: ChainEvent, viewer: Viewer) -> ChainEvent | None:
    """The event as this viewer sees it: whole, trimmed (a public event naming none of its
    accounts), or None (a private event naming none of its accounts)."""
    if viewer.everything or viewer.owns_any(event.parties()):
        return event
    return event.for_public() if event.public else None


def unknown_parties(events: Iterable[ChainEvent], viewer: Viewer) -> set[str]:
    """The accounts named by `events` that the viewer does not own: when one is an account
    its key made since `viewer` was read, the viewer is stale."""
    if viewer.everything:
        return set()
    named = {a.lower() for e in events for a in e.parties()}
    return named - viewer.accounts - {ZERO_ADDRESS}
