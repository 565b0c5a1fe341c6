"""Sending again every signed transaction that is still not mined after a while.

A node can accept a transaction and die before it gossips it (a kill -9 right after
eth_sendRawTransaction answered): the transaction is gone from the network, its task
has answered "sent", and every later nonce of its sender waits behind the gap forever.
The provider still has the signed bytes, so it sends them again through a live node
until the sender's mined nonce has passed them. A copy a node already holds is answered
"already known", so this is idempotent.

A provider that leaves (a rebalance, a crash) takes its watch list with it, so one that
gets partitions also watches every transaction the journal still holds (`adopt`): those
another provider sent and the chain has not mined yet.
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
import time
from collections import OrderedDict, defaultdict
from collections.abc import Callable, Iterable
from dataclasses import dataclass
from enum import Enum

from ethgw_wire.errors import TaskError
from provider import metrics
from provider.chain import (
    AlreadyKnownError,
    NodeClient,
    NodeUnreachableError,
    NonceTooLowError,
)
from provider.transactions import JournalRecord

log = logging.getLogger("ethgw.provider.rebroadcast")


class _Answer(Enum):
    SENT = "sent"  # the node took it anew: it had been lost
    KNOWN = "known"  # the node holds it: it is not lost
    SETTLED = "settled"  # the nonce is taken on chain: mined, or replaced
    FAILED = "failed"  # refused for another reason, or no answer: try again next time


@dataclass
class _Watched:
    record: JournalRecord
    due_at: float  # when to look at it next
    resent: int = 0  # times a node took it anew


@dataclass(frozen=True)
class Sweep:
    """What one pass did."""

    mined: int = 0
    resent: int = 0
    dropped: int = 0


class Rebroadcaster:
    """Watches the transactions this provider sent until their sender's nonce passes them."""

    def __init__(
        self,
        pick_client: Callable[[], NodeClient | None],
        *,
        after_s: float,
        interval_s: float,
        max_watched: int,
        max_age_s: float,
        journaled: Callable[[JournalRecord], bool] = lambda record: True,
    ) -> None:
        self._pick_client = pick_client
        # Whether the journal still holds the record: a refused one is deleted, and one
        # adopted from another provider is deleted once that provider saw it mined.
        self._journaled = journaled
        self._after_s = after_s
        self._interval_s = interval_s
        self._max_watched = max_watched
        self._max_age_s = max_age_s
        self._watched: OrderedDict[str, _Watched] = OrderedDict()

    def watch(self, record: JournalRecord, now: float) -> None:
        """Look at `record` again `after_s` from now (a transaction we signed, nonce known)."""
        if record.nonce < 0 or record.tx_hash in self._watched:
            return
        self._watched[record.tx_hash] = _Watched(record, now + self._after_s)
        while len(self._watched) > self._max_watched:
            _, oldest = self._watched.popitem(last=False)
            log.warning(
                "unconfirmed transaction no longer watched tx=%s reason=too_many watched=%d",
                oldest.record.tx_hash,
                self._max_watched,
            )
        metrics.UNCONFIRMED.set(len(self._watched))

    def adopt(self, records: Iterable[JournalRecord], now: float) -> int:
        """Watch each of `records` not watched yet (taken over from another provider);
        returns how many were new."""
        before = len(self._watched)
        for record in records:
            self.watch(record, now)
        return len(self._watched) - before

    def watching(self, tx_hash: str) -> bool:
        """Whether `tx_hash` is watched: sent, and not yet seen mined (or given up)."""
        return tx_hash in self._watched

    @property
    def watched(self) -> int:
        return len(self._watched)

    async def run(self, stop: asyncio.Event) -> None:
        while not stop.is_set():
            try:
                await self.sweep(time.time())
            except Exception as exc:  # a node gone mid-sweep: the next sweep tries again
                log.warning("rebroadcast sweep failed error=%r", exc)
            with contextlib.suppress(TimeoutError):
                await asyncio.wait_for(stop.wait(), self._interval_s)

    async def sweep(self, now: float) -> Sweep:
        """Forget what is mined; send again what is due and is not."""
        due = [w for w in self._watched.values() if w.due_at <= now]
        if not due:
            return Sweep()
        node = self._pick_client()
        if node is None:
            return Sweep()
        by_sender: dict[str, list[_Watched]] = defaultdict(list)
        for watched in due:
            by_sender[watched.record.sender].append(watched)
        outcomes = await asyncio.gather(
            *(self._sweep_sender(node, sender, group, now) for sender, group in by_sender.items())
        )
        total = Sweep(
            mined=sum(o.mined for o in outcomes),
            resent=sum(o.resent for o in outcomes),
            dropped=sum(o.dropped for o in outcomes),
        )
        metrics.UNCONFIRMED.set(len(self._watched))
        if total.resent or total.dropped:
            log.info(
                "rebroadcast sweep mined=%d resent=%d dropped=%d watched=%d",
                total.mined,
                total.resent,
                total.dropped,
                len(self._watched),
            )
        return total

    async def _sweep_sender(
        self, node: NodeClient, sender: str, group: list[_Watched], now: float
    ) -> Sweep:
        mined_nonce = int(await node.request("eth_getTransactionCount", [sender, "latest"]), 16)
        mined = resent = dropped = 0
        # In nonce order: the lowest missing one is the gap that holds the others back.
        for watched in sorted(group, key=lambda w: w.record.nonce):
            record = watched.record
            if record.nonce < mined_nonce or not self._journaled(record):
                self._watched.pop(record.tx_hash, None)
                mined += 1
            elif now - record.created_at > self._max_age_s:
                self._watched.pop(record.tx_hash, None)
                dropped += 1
                log.warning(
                    "unconfirmed transaction no longer watched tx=%s reason=age age_s=%.0f",
                    record.tx_hash,
                    now - record.created_at,
                )
            else:
                answer = await self._resend(node, record)
                if answer is _Answer.SETTLED:
                    self._watched.pop(record.tx_hash, None)
                    mined += 1
                    continue
                watched.due_at = now + self._after_s
                if answer is _Answer.SENT:
                    watched.resent += 1
                    resent += 1
                    metrics.REBROADCASTS.inc()
        return Sweep(mined, resent, dropped)

    async def _resend(self, node: NodeClient, record: JournalRecord) -> _Answer:
        """Send the signed bytes again, and say what the node made of them."""
        try:
            await node.send_raw_transaction(record.raw_tx)
        except NonceTooLowError:
            return _Answer.SETTLED
        except AlreadyKnownError:
            return _Answer.KNOWN
        except TaskError as exc:
            log.warning("rebroadcast refused tx=%s error=%s", record.tx_hash, exc)
            return _Answer.FAILED
        except NodeUnreachableError as exc:
            log.warning("rebroadcast node did not answer tx=%s error=%r", record.tx_hash, exc)
            return _Answer.FAILED
        log.info(
            "transaction sent again tx=%s sender=%s nonce=%d",
            record.tx_hash,
            record.sender,
            record.nonce,
        )
        return _Answer.SENT
