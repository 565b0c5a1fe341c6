"""Signing and sending writes exactly once per task, whatever is redelivered.

Before a signed transaction is broadcast it is written to the journal (a
compacted topic keyed by task id). A task that comes back after a crash or a
rebalance finds its record there and re-broadcasts the very same bytes, so the
chain sees one transaction per task; "already known" and "nonce too low" for
that same hash count as success.

The journal also keeps a write's record after its task is committed, for as long as its
transaction is not mined (journal_pruning), and every provider mirrors it. So the
provider that gets an account's partition after a rebalance or a crash starts the
account's nonces above every transaction the previous owner signed, even one that has
not yet reached the node it asks (a nonce signed twice loses one of its two
transactions, and that write answered with a hash that never lands), and it sends those
transactions again until they are mined (rebroadcast).
"""

from __future__ import annotations

import asyncio
import logging
import time
from collections.abc import Callable, Iterator
from contextlib import contextmanager
from dataclasses import dataclass, field
from typing import Any, cast

from eth_account import Account
from eth_utils.crypto import keccak
from pydantic import BaseModel, ConfigDict, Field

from ethgw_wire.errors import NodeBehindError, NodeUnavailableError, RevertedError, TaskError
from ethgw_wire.operations import ADMIN_SIGNER, FAUCET_SIGNER
from ethgw_wire.topic_mirror import TopicMirror
from provider.accounts import AccountBook
from provider.chain import (
    AlreadyKnownError,
    NodeClient,
    NonceTooLowError,
    ReplacementUnderpricedError,
)
from provider.metrics import (
    ACCOUNT_TURN_HOLD,
    ACCOUNT_TURN_STEP,
    ACCOUNT_TURN_WAIT,
    ACCOUNT_TURN_WRITES,
)
from provider.nonces import NonceTracker, Turn

log = logging.getLogger("ethgw.provider.tx")

PLAIN_TRANSFER_GAS = 21_000
# A contract call estimated within this factor of its intrinsic gas may have run no code.
SUSPICIOUS_ESTIMATE_RATIO = 1.05
# Transactions a task signs before its own, each journaled under a key of its own.
PRE_STEPS = ("fund",)
# Writes one account's turn signs and journals together: enough to drain a platform
# account's line under load, few enough that the first of them is not held up long.
MAX_WRITES_PER_TURN = 32


def step_key(task_id: str, step: str) -> str:
    """The journal key of a transaction a task signs before its own (one of PRE_STEPS)."""
    assert step in PRE_STEPS, step
    return f"{task_id}:{step}"


def journal_keys(task_id: str) -> tuple[str, ...]:
    """Every journal key a task may have written."""
    return (task_id, *(step_key(task_id, step) for step in PRE_STEPS))


class JournalRecord(BaseModel):
    """The signed transaction of one write task."""

    model_config = ConfigDict(frozen=True)

    task_id: str
    raw_tx: str
    tx_hash: str
    sender: str
    nonce: int
    created_at: float = Field(default_factory=time.time)


@dataclass(frozen=True)
class _Draft:
    """A write of one task, ready to be signed once its account's turn comes."""

    task_id: str
    sender: str
    signer_kind: str  # the metric label of its signer
    key: bytes = field(repr=False)
    fields: dict[str, Any]
    abi: list[dict[str, Any]] | None
    gas_price: int


@dataclass
class _Write:
    """One write in its account's line: its draft, the node chosen for it, and its outcome,
    set by whichever turn signs and sends it (its own, or one ahead that took it along)."""

    draft: _Draft
    node: NodeClient
    gas: int | None  # None: a contract call, estimated in the turn
    waiting_since: float
    outcome: asyncio.Future[Sent] = field(
        default_factory=lambda: asyncio.get_running_loop().create_future()
    )

    def succeed(self, sent: Sent) -> None:
        if not self.outcome.done():
            self.outcome.set_result(sent)

    def fail(self, exc: BaseException) -> None:
        if not self.outcome.done():
            self.outcome.set_exception(exc)

    def abandon(self) -> None:
        """Its task stopped waiting (cancelled): a turn that has not signed it yet skips it."""
        self.outcome.cancel()

    @property
    def abandoned(self) -> bool:
        return self.outcome.cancelled()


def _needs_no_estimate(write: _Write) -> bool:
    """A write another turn may take along: one needing an estimate must see the writes
    ahead of it in the node's pending state, so it waits for a turn of its own."""
    return write.gas is not None


def _count(counts: dict[str, int], key: str) -> int:
    counts[key] = counts.get(key, 0) + 1
    return counts[key]


@dataclass(frozen=True)
class Sent:
    tx_hash: str
    sender: str
    nonce: int
    rebroadcast: bool  # the journal already had this task's transaction


class TransactionSender:
    def __init__(
        self,
        accounts: AccountBook,
        nonces: NonceTracker,
        journal: TopicMirror[JournalRecord],
        gas_price_wei: int | None,
        gas_margin: float,
        on_sent: Callable[[JournalRecord], None] | None = None,
        on_broadcast: Callable[[str, str], None] | None = None,
    ) -> None:
        self._on_sent = on_sent  # told of every transaction a node took (the rebroadcaster)
        # Told of the bytes of every transaction a node took, and that node's URL (the
        # spreader hands them to the other nodes).
        self._on_broadcast = on_broadcast
        self._turns: set[asyncio.Task[None]] = set()  # turns running, kept from the collector
        self._accounts = accounts
        self._nonces = nonces
        self._journal = journal
        self._chain_id: int | None = None  # asked of the first node, then fixed
        self._gas_price_wei = gas_price_wei
        self._gas_margin = gas_margin

    async def send(
        self,
        node: NodeClient,
        task_id: str,
        signer: str,
        tx: dict[str, Any],
        abi: list[dict[str, Any]] | None = None,
    ) -> Sent:
        """Sign `tx` (to, value, data, optional gas) as `signer` and broadcast it once."""
        known = self._journal.get(task_id)
        if known is not None:
            return await self._send_again(node, known)
        key = self._accounts.key_for(signer)
        sender = self._accounts.address_of(signer)
        fields = {"from": sender, "value": 0, **tx}
        # The place in line is taken before anything is awaited, so one account's writes
        # get their nonces in task order.
        waiting_since = time.monotonic()
        turn: Turn[_Write] = self._nonces.turn(sender)
        turn_is_ours = True  # until a task of its own holds it
        write: _Write | None = None
        try:
            # Read while waiting, so the turn lasts only the node calls that must see the
            # account's earlier writes (the nonce's, a contract call's estimate).
            gas_price = self._gas_price_wei or int(await node.request("eth_gasPrice", []), 16)
            gas = fields.pop("gas", None) or await self._gas_before_turn(node, fields, abi)
            draft = _Draft(task_id, sender, signer_kind(signer), key, fields, abi, gas_price)
            write = _Write(draft, node, gas, waiting_since)
            turn.ready(write)
            await turn.wait_unless(write.outcome)
            if not write.outcome.done():  # no turn ahead took it along: it leads its own
                self._start_turn(turn, write)
                turn_is_ours = False
            return await write.outcome
        finally:
            if turn_is_ours:
                turn.end()
            if write is not None:
                write.abandon()

    def _start_turn(self, turn: Turn[_Write], first: _Write) -> None:
        """Run the account's turn in a task of its own, so each write's task goes on as soon
        as its own transaction is out, and a cancelled task does not cut the turn short."""
        running = asyncio.create_task(self._lead(turn, first), name=f"turn:{first.draft.sender}")
        self._turns.add(running)
        running.add_done_callback(self._turns.discard)

    def has_signed(self, tx_hash: str) -> bool:
        """Whether the journal holds a transaction of this hash: one the platform signed and
        has not seen mined, which some node took (or is about to take)."""
        return journaled_hash(self._journal, tx_hash)

    async def _send_again(self, node: NodeClient, known: JournalRecord) -> Sent:
        """A task whose transaction the journal holds: the very same bytes, broadcast again."""
        await self._broadcast(node, known)
        self._sent(known)
        return Sent(known.tx_hash, known.sender, known.nonce, rebroadcast=True)

    async def _lead(self, turn: Turn[_Write], first: _Write) -> None:
        """Hold the account's turn for `first` and the ready writes right behind it that need
        no estimate in the turn: their journal records go to Kafka together."""
        writes = [first, *turn.followers(_needs_no_estimate, MAX_WRITES_PER_TURN - 1)]
        started = time.monotonic()
        kind = first.draft.signer_kind
        for write in writes:
            ACCOUNT_TURN_WAIT.labels(kind).observe(started - write.waiting_since)
        ACCOUNT_TURN_WRITES.labels(kind).observe(len(writes))
        conflicts: dict[str, int] = {}
        pending = writes
        try:
            while pending:
                pending = await self._sign_and_broadcast(pending, conflicts)
        finally:
            ACCOUNT_TURN_HOLD.labels(kind).observe(time.monotonic() - started)
            turn.end()
            for write in writes:  # the turn was cut short (shutdown): as if they were cancelled
                write.abandon()

    async def _sign_and_broadcast(
        self, writes: list[_Write], conflicts: dict[str, int]
    ) -> list[_Write]:
        """In the account's turn: estimate the first write if it must be, then sign, journal
        and broadcast each in nonce order. Returns the writes to sign again: those behind a
        refused transaction or a nonce conflict, none of which went out."""
        first = writes[0]
        if first.gas is None:
            try:
                with _turn_step(first.draft, "estimate"):
                    first.gas = await self._estimate(
                        first.node, first.draft.fields, first.draft.abi
                    )
            except Exception as exc:
                first.fail(exc)
                return writes[1:]
        signed, unsigned = await self._sign_each([w for w in writes if not w.abandoned])
        journaled, unjournaled = await self._journal_each(signed)
        for index, (write, record) in enumerate(journaled):
            try:
                with _turn_step(write.draft, "broadcast"):
                    await self._broadcast(write.node, record)
            except _NonceConflictError:
                # Another transaction took the nonce (an earlier owner of this account's
                # partition, a raw send): resync and sign again, once per write.
                behind = [w for w, _ in journaled[index:]]
                await self._forget_unsent(behind)
                self._nonces.forget(first.draft.sender)
                if _count(conflicts, write.draft.task_id) == 2:
                    write.fail(TaskError(f"nonce conflict for {write.draft.sender} persisted"))
                    behind = behind[1:]
                return behind + unjournaled + unsigned
            except TaskError as exc:
                write.fail(exc)
                behind = [w for w, _ in journaled[index + 1 :]]
                await self._forget_unsent([write, *behind])
                self._nonces.rewind(first.draft.sender, record.nonce)
                return behind + unjournaled + unsigned
            except Exception as exc:  # no answer: the journal keeps it, a retry sends it again
                write.fail(exc)
                continue
            self._sent(record)
            write.succeed(Sent(record.tx_hash, record.sender, record.nonce, rebroadcast=False))
        return unjournaled + unsigned

    async def _sign_each(
        self, writes: list[_Write]
    ) -> tuple[list[tuple[_Write, JournalRecord]], list[_Write]]:
        """Sign the writes in order; a write whose nonce or chain id no node gave fails, and
        the writes behind it are left to sign again."""
        signed: list[tuple[_Write, JournalRecord]] = []
        for index, write in enumerate(writes):
            try:
                signed.append((write, await self._sign(write)))
            except Exception as exc:
                write.fail(exc)
                return signed, writes[index + 1 :]
        return signed, []

    async def _journal_each(
        self, signed: list[tuple[_Write, JournalRecord]]
    ) -> tuple[list[tuple[_Write, JournalRecord]], list[_Write]]:
        """Write every record to the journal at once (one round trip to Kafka for the turn).
        From the first write whose record was not taken, none is sent: that write fails,
        the ones behind it are left to sign again, their nonces reused."""
        if not signed:
            return [], []
        first = signed[0][0]
        with _turn_step(first.draft, "journal"):
            puts = [self._journal.put(w.draft.task_id, record) for w, record in signed]
            outcomes = await asyncio.gather(*puts, return_exceptions=True)
        failed = next((i for i, o in enumerate(outcomes) if isinstance(o, BaseException)), None)
        if failed is None:
            return signed, []
        refused, record = signed[failed]
        refused.fail(cast(BaseException, outcomes[failed]))
        behind = [w for w, _ in signed[failed + 1 :]]
        await self._forget_unsent(behind)
        self._nonces.rewind(first.draft.sender, record.nonce)
        return signed[:failed], behind

    async def _forget_unsent(self, writes: list[_Write]) -> None:
        """Transactions signed but in no pool: no one may send them again, and their records
        would lift the next owner's nonces past nonces no transaction holds."""
        if not writes:
            return
        task_ids = [w.draft.task_id for w in writes]
        try:
            await self._journal.delete(task_ids)
        except Exception as exc:  # Kafka away: the records stay, as after a crash
            log.warning("unsent transactions kept in the journal tasks=%s error=%r", task_ids, exc)

    def _sent(self, record: JournalRecord) -> None:
        if self._on_sent is not None:
            self._on_sent(record)

    async def send_raw(self, node: NodeClient, task_id: str, raw_tx: str) -> Sent:
        """Broadcast a transaction the client signed itself."""
        signed = bytes.fromhex(raw_tx.removeprefix("0x"))
        sender = str(Account.recover_transaction(signed))
        tx_hash = "0x" + _keccak_hex(signed)
        record = JournalRecord(
            task_id=task_id, raw_tx=raw_tx, tx_hash=tx_hash, sender=sender, nonce=-1
        )
        await self._broadcast(node, record)
        return Sent(tx_hash, sender, -1, rebroadcast=False)

    async def _gas_before_turn(
        self, node: NodeClient, fields: dict[str, Any], abi: list[dict[str, Any]] | None
    ) -> int | None:
        """The gas of a transfer or a contract creation; None for a contract call.

        A call is estimated in the account's turn, against the pending state the account's
        earlier writes leave (mint, then publish). A creation's gas is its constructor's,
        which a write of the same account rarely changes; one that fails here (say, it calls
        a contract an earlier write is creating) is estimated again in the turn.
        """
        if fields.get("to"):
            return None if fields.get("data") else PLAIN_TRANSFER_GAS
        try:
            return await self._estimate(node, fields, abi)
        except NodeUnavailableError:
            raise  # it would fail again, holding the account's turn
        except TaskError:
            return None

    async def _sign(self, write: _Write) -> JournalRecord:
        """The write's transaction, signed with the account's next nonce."""
        draft, node = write.draft, write.node
        sender = draft.sender
        assert write.gas is not None, "a write is estimated before it is signed"

        async def pending_count() -> int:
            pending = int(await node.request("eth_getTransactionCount", [sender, "pending"]), 16)
            return max(pending, next_journaled_nonce(self._journal, sender))

        if self._chain_id is None:
            self._chain_id = int(await node.request("eth_chainId", []), 16)
        with _turn_step(draft, "nonce"):
            nonce = await self._nonces.take(sender, pending_count)
        unsigned = {k: v for k, v in draft.fields.items() if k != "from"}
        unsigned.update(
            gas=write.gas, gasPrice=draft.gas_price, nonce=nonce, chainId=self._chain_id
        )
        try:
            with _turn_step(draft, "sign"):
                signed = Account.sign_transaction(unsigned, draft.key)
        except Exception:
            self._nonces.rewind(sender, nonce)
            raise
        return JournalRecord(
            task_id=draft.task_id,
            raw_tx=signed.raw_transaction.to_0x_hex(),
            tx_hash=signed.hash.to_0x_hex(),
            sender=sender,
            nonce=nonce,
        )

    async def _estimate(
        self, node: NodeClient, fields: dict[str, Any], abi: list[dict[str, Any]] | None
    ) -> int:
        estimate = await node.estimate_gas(fields, abi)
        is_call = abi is not None and bool(fields.get("to"))
        if is_call and await self._runs_no_code(node, fields, estimate):
            # The node does not see the contract yet (it is behind, or its pending state
            # is): a transaction signed with this gas would run out on chain while its task
            # reported success.
            raise NodeBehindError(f"no contract code at {fields['to']} on this node")
        return int(estimate * self._gas_margin)

    @staticmethod
    async def _runs_no_code(node: NodeClient, fields: dict[str, Any], estimate: int) -> bool:
        """Whether a contract call's estimate is that of a call to an empty account.

        Geth's estimate stops within 1.5% of the exact figure, so an estimate near the
        intrinsic cost is only a suspicion; the code itself settles it, at the cost of
        one more call on that rare path.
        """
        if estimate > SUSPICIOUS_ESTIMATE_RATIO * intrinsic_gas(fields["data"]):
            return False
        code = await node.request("eth_getCode", [fields["to"], "pending"])
        return code in (None, "", "0x")

    async def _broadcast(self, node: NodeClient, record: JournalRecord) -> None:
        try:
            await node.send_raw_transaction(record.raw_tx)
        except AlreadyKnownError:
            pass
        except (NonceTooLowError, ReplacementUnderpricedError) as exc:
            if not await _is_known(node, record.tx_hash):
                raise _NonceConflictError(exc.message) from None
        if self._on_broadcast is not None:
            self._on_broadcast(record.raw_tx, node.url)


@contextmanager
def _turn_step(draft: _Draft, step: str) -> Iterator[None]:
    """Time one step of a write's turn (ACCOUNT_TURN_STEP): what fills an account's turn."""
    started = time.monotonic()
    try:
        yield
    finally:
        ACCOUNT_TURN_STEP.labels(draft.signer_kind, step).observe(time.monotonic() - started)


def signer_kind(signer: str) -> str:
    """A signer as a metric label: a platform account by name, or "user" (a bounded set)."""
    return signer if signer in (ADMIN_SIGNER, FAUCET_SIGNER) else "user"


def next_journaled_nonce(journal: TopicMirror[JournalRecord], sender: str) -> int:
    """The nonce after the highest one the journal holds for `sender` (0: none)."""
    nonces = [r.nonce for _, r in journal.items() if r.sender == sender and r.nonce >= 0]
    return max(nonces, default=-1) + 1


def journaled_hash(journal: TopicMirror[JournalRecord], tx_hash: str) -> bool:
    """Whether the journal holds a transaction of this hash (a scan: asked only when a node
    does not know the hash)."""
    wanted = tx_hash.lower()
    return any(record.tx_hash.lower() == wanted for _, record in journal.items())


def is_journaled(journal: TopicMirror[JournalRecord], record: JournalRecord) -> bool:
    """Whether the journal still holds this very transaction under its task's key."""
    held = journal.get(record.task_id)
    return held is not None and held.tx_hash == record.tx_hash


class _NonceConflictError(Exception):
    """The nonce of our transaction is taken by a different transaction."""


async def _is_known(node: NodeClient, tx_hash: str) -> bool:
    return await node.request("eth_getTransactionByHash", [tx_hash]) is not None


def intrinsic_gas(data: str | bytes) -> int:
    """What a call costs before any code runs: the base fee and its calldata (EIP-2028)."""
    raw = bytes.fromhex(data.removeprefix("0x")) if isinstance(data, str) else data
    zeros = raw.count(0)
    return PLAIN_TRANSFER_GAS + 4 * zeros + 16 * (len(raw) - zeros)


def _keccak_hex(data: bytes) -> str:
    return keccak(data).hex()


def receipt_summary(receipt: dict[str, Any]) -> dict[str, Any]:
    """What a write answers with once mined."""
    status = int(str(receipt.get("status", "0x1")), 16)
    if status != 1:
        raise RevertedError(f"transaction {receipt.get('transactionHash')} reverted on chain")
    return dict(
        {
            "tx_hash": receipt.get("transactionHash"),
            "block_number": int(str(receipt["blockNumber"]), 16),
            "gas_used": int(str(receipt["gasUsed"]), 16),
            "contract_address": receipt.get("contractAddress"),
            "status": "mined",
        }
    )
