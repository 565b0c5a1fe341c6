"""eth_subscribe's subscriptions: one `Session` per WebSocket, the `SubscriptionHub` that
fans blocks and transaction hashes out to them.

Every message for a socket goes through its bounded outbox; one that finds the outbox full
marks the session overflowed (the socket is then closed, `SLOW_CLOSE_CODE`) instead of
waiting, so a slow client never holds up the others. Blocks come from the chain-heads
topic; a number at or below the last one delivered is dropped (ethgw_wire.chain_heads).
"""

from __future__ import annotations

import asyncio
import json
import secrets
from collections import Counter
from collections.abc import Set as AbstractSet
from dataclasses import dataclass
from enum import StrEnum
from typing import Any

from ethgw_wire.chain_heads import ChainHead, HeadSequence
from gateway.log_filter import LogFilter
from gateway.metrics import SLOW_CLIENTS_DROPPED, SUBSCRIPTIONS_OPEN

# RFC 6455 1008, policy violation: the client did not read its messages fast enough.
SLOW_CLOSE_CODE = 1008


class SubscriptionKind(StrEnum):
    NEW_HEADS = "newHeads"
    LOGS = "logs"
    PENDING = "newPendingTransactions"


class SubscriptionLimitError(Exception):
    """The key already holds its limit of subscriptions."""


@dataclass(frozen=True)
class Subscription:
    id: str
    kind: SubscriptionKind
    log_filter: LogFilter


@dataclass(frozen=True)
class Outgoing:
    """A message for the socket; `kind` names a notification's subscription kind."""

    text: str
    kind: SubscriptionKind | None = None


class Session:
    """One WebSocket's subscriptions and the messages waiting to be written to it."""

    def __init__(self, key_id: str, outbox_size: int) -> None:
        self.key_id = key_id
        self.subscriptions: dict[str, Subscription] = {}
        self.outbox: asyncio.Queue[Outgoing] = asyncio.Queue(outbox_size)
        self.overflowed = asyncio.Event()
        self.revoked = asyncio.Event()  # its key was revoked: the socket is to close

    def offer(self, message: dict[str, Any], kind: SubscriptionKind | None = None) -> bool:
        """Queue a message; False (and the session overflowed) when the outbox is full."""
        if self.overflowed.is_set():
            return False
        try:
            self.outbox.put_nowait(Outgoing(json.dumps(message), kind))
        except asyncio.QueueFull:
            self.overflowed.set()
            SLOW_CLIENTS_DROPPED.inc()
            return False
        return True

    def notify(self, subscription: Subscription, result: Any) -> bool:
        params = {"subscription": subscription.id, "result": result}
        message = {"jsonrpc": "2.0", "method": "eth_subscription", "params": params}
        return self.offer(message, subscription.kind)


class SubscriptionHub:
    """Every session of this gateway; at most `per_key` subscriptions per API key."""

    def __init__(self, per_key: int, outbox_size: int) -> None:
        self.per_key = per_key
        self.outbox_size = outbox_size
        self._sessions: set[Session] = set()
        self._per_key: Counter[str] = Counter()
        self._heads = HeadSequence()

    def open(self, key_id: str) -> Session:
        session = Session(key_id, self.outbox_size)
        self._sessions.add(session)
        return session

    def close(self, session: Session) -> None:
        for subscription_id in list(session.subscriptions):
            self.unsubscribe(session, subscription_id)
        self._sessions.discard(session)

    def end_sessions_of(self, key_ids: AbstractSet[str]) -> int:
        """Mark the sessions of these (revoked) keys to close; how many there were."""
        ending = [s for s in self._sessions if s.key_id in key_ids]
        for session in ending:
            session.revoked.set()
        return len(ending)

    def subscribe(
        self, session: Session, kind: SubscriptionKind, log_filter: LogFilter | None = None
    ) -> Subscription:
        if self._per_key[session.key_id] >= self.per_key:
            raise SubscriptionLimitError(
                f"this API key already holds {self.per_key} subscriptions, the limit per key;"
                " eth_unsubscribe one first"
            )
        subscription = Subscription(f"0x{secrets.token_hex(16)}", kind, log_filter or LogFilter())
        session.subscriptions[subscription.id] = subscription
        self._per_key[session.key_id] += 1
        SUBSCRIPTIONS_OPEN.labels(kind.value).inc()
        return subscription

    def unsubscribe(self, session: Session, subscription_id: str) -> bool:
        subscription = session.subscriptions.pop(subscription_id, None)
        if subscription is None:
            return False
        self._per_key[session.key_id] -= 1
        if self._per_key[session.key_id] <= 0:
            del self._per_key[session.key_id]
        SUBSCRIPTIONS_OPEN.labels(subscription.kind.value).dec()
        return True

    def subscriptions_of(self, key_id: str) -> int:
        return self._per_key[key_id]

    @property
    def last_block(self) -> int | None:
        return self._heads.last

    def deliver_head(self, head: ChainHead) -> bool:
        """Notify newHeads and matching logs subscriptions; False when the block is not
        newer than the last delivered (a feed's repeat), which is then dropped."""
        if not self._heads.accept(head.number):
            return False
        for session in list(self._sessions):
            for subscription in list(session.subscriptions.values()):
                if subscription.kind is SubscriptionKind.NEW_HEADS:
                    session.notify(subscription, head.header)
                elif subscription.kind is SubscriptionKind.LOGS:
                    for log in head.logs:
                        if subscription.log_filter.matches(log):
                            session.notify(subscription, log)
        return True

    def deliver_pending(self, key_id: str, tx_hash: str) -> None:
        """Notify the newPendingTransactions subscriptions of the key that sent the
        transaction, and no other key's."""
        for session in list(self._sessions):
            if session.key_id != key_id:
                continue
            for subscription in list(session.subscriptions.values()):
                if subscription.kind is SubscriptionKind.PENDING:
                    session.notify(subscription, tx_hash)
