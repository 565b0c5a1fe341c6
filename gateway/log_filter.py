"""The filter of an eth_subscribe "logs" subscription, with Geth's matching rules (pure).

`{"address": A | [A...], "topics": [T | [T...] | null, ...]}`: a log matches when its
address is one of the addresses (any, when none is given) and, position by position, its
topic is one of that position's (null, an empty list or a list holding null: any). A
filter with more positions than the log has topics does not match it. Hashes compare
without regard to case.
"""

from __future__ import annotations

import re
from collections.abc import Mapping
from dataclasses import dataclass
from typing import Any

MAX_ADDRESSES = 100
MAX_TOPIC_POSITIONS = 4  # LOG0..LOG4: a log has at most four topics
MAX_TOPICS_PER_POSITION = 100
ALLOWED_MEMBERS = ("address", "topics")

_ADDRESS = re.compile(r"^0x[0-9a-fA-F]{40}$")
_HASH = re.compile(r"^0x[0-9a-fA-F]{64}$")


class FilterError(ValueError):
    """A filter refused, naming the member at fault (for example `topics[1][0]`)."""

    def __init__(self, field: str, reason: str) -> None:
        super().__init__(f"{field}: {reason}")
        self.field = field
        self.reason = reason


@dataclass(frozen=True)
class LogFilter:
    addresses: frozenset[str] | None = None  # lower case; None: any address
    topics: tuple[frozenset[str] | None, ...] = ()  # lower case per position; None: any

    def matches(self, log: Mapping[str, Any]) -> bool:
        address = log.get("address")
        if self.addresses is not None and (
            not isinstance(address, str) or address.lower() not in self.addresses
        ):
            return False
        topics = log.get("topics")
        if not isinstance(topics, list) or len(self.topics) > len(topics):
            return False
        for wanted, topic in zip(self.topics, topics, strict=False):
            if wanted is not None and (not isinstance(topic, str) or topic.lower() not in wanted):
                return False
        return True


def parse_log_filter(value: Any) -> LogFilter:
    """The filter an eth_subscribe "logs" call gives; an absent one matches every log."""
    if value is None:
        return LogFilter()
    if not isinstance(value, dict):
        raise FilterError("filter", "must be an object with address and topics")
    for member in value:
        if member not in ALLOWED_MEMBERS:
            raise FilterError(
                str(member)[:64],
                "is not supported: a logs subscription takes address and topics only "
                "(it delivers the logs of new blocks, from the moment it is made)",
            )
    return LogFilter(_addresses(value.get("address")), _topics(value.get("topics")))


def _addresses(value: Any) -> frozenset[str] | None:
    if value is None:
        return None
    items = value if isinstance(value, list) else [value]
    if isinstance(value, list) and not value:
        return None
    if len(items) > MAX_ADDRESSES:
        raise FilterError("address", f"at most {MAX_ADDRESSES} addresses")
    for index, item in enumerate(items):
        if not isinstance(item, str) or not _ADDRESS.match(item):
            where = f"address[{index}]" if isinstance(value, list) else "address"
            raise FilterError(where, "must be a 0x-prefixed 20-byte hex address")
    return frozenset(item.lower() for item in items)


def _topics(value: Any) -> tuple[frozenset[str] | None, ...]:
    if value is None:
        return ()
    if not isinstance(value, list):
        raise FilterError("topics", "must be an array of topics, arrays of topics or nulls")
    if len(value) > MAX_TOPIC_POSITIONS:
        raise FilterError("topics", f"at most {MAX_TOPIC_POSITIONS} positions")
    return tuple(_position(item, index) for index, item in enumerate(value))


def _position(value: Any, index: int) -> frozenset[str] | None:
    if value is None:
        return None
    alternatives = value if isinstance(value, list) else [value]
    if not alternatives or None in alternatives:
        return None  # as Geth: an empty list, or a null among the alternatives, matches any
    if len(alternatives) > MAX_TOPICS_PER_POSITION:
        raise FilterError(f"topics[{index}]", f"at most {MAX_TOPICS_PER_POSITION} alternatives")
    for inner, item in enumerate(alternatives):
        if not isinstance(item, str) or not _HASH.match(item):
            where = f"topics[{index}][{inner}]" if isinstance(value, list) else f"topics[{index}]"
            raise FilterError(where, "must be a 0x-prefixed 32-byte hex topic or null")
    return frozenset(item.lower() for item in alternatives)
