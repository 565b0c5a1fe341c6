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

import logging
import time
from collections.abc import Callable, Iterator
from contextlib import contextmanager
from dataclasses import dataclass, field
from typing import Any

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
from provider.metrics import ACCOUNT_TURN_HOLD, ACCOUNT_TURN_STEP, ACCOUNT_TURN_WAIT
from provider.nonces import NonceTracker

log = logging.getLogger("ethgw.provider.tx")

PLAIN_TRANSFER_GAS = 21_000
# A contract call estimated within this factor of its intrinsic gas may have run no code.
SUSPICIOUS_ESTIMATE_RATIO = 1.05
# Transactions a task signs before its own, each journaled under a key of its own.
PRE_STEPS = ("fund",)


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
    ) -> None:
        self._on_sent = on_sent  # told of every transaction a node took (the rebroadcaster)
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
            await self._broadcast(node, known)
            self._sent(known)
            return Sent(known.tx_hash, known.sender, known.nonce, rebroadcast=True)
        key = self._accounts.key_for(signer)
        sender = self._accounts.address_of(signer)
        fields = {"from": sender, "value": 0, **tx}
        # The place in line is taken before anything is awaited, so one account's writes
        # get their nonces in task order.
        kind = signer_kind(signer)
        waiting_since = time.monotonic()
        turn = self._nonces.turn(sender)
        try:
            # Read while waiting, so the turn lasts only the node calls that must see the
            # account's earlier writes (the nonce's, a contract call's estimate).
            gas_price = self._gas_price_wei or int(await node.request("eth_gasPrice", []), 16)
            gas = fields.pop("gas", None) or await self._gas_before_turn(node, fields, abi)
            draft = _Draft(task_id, sender, kind, key, fields, abi, gas_price)
            await turn.wait()
            turn_started = time.monotonic()
            ACCOUNT_TURN_WAIT.labels(kind).observe(turn_started - waiting_since)
            try:
                return await self._sign_and_broadcast(node, draft, gas)
            finally:
                held = time.monotonic() - turn_started
                ACCOUNT_TURN_HOLD.labels(kind).observe(held)
        finally:
            turn.end()

    async def _sign_and_broadcast(self, node: NodeClient, draft: _Draft, gas: int | None) -> Sent:
        """In the account's turn: the nonce, the signature, the journal, the broadcast."""
        sender = draft.sender
        if gas is None:
            with _turn_step(draft, "estimate"):
                gas = await self._estimate(node, draft.fields, draft.abi)
        for attempt in (1, 2):
            record = await self._sign(node, draft, gas)
            try:
                with _turn_step(draft, "broadcast"):
                    await self._broadcast(node, record)
                self._sent(record)
                return Sent(record.tx_hash, sender, record.nonce, rebroadcast=False)
            except _NonceConflictError:
                # Another transaction took the nonce (an earlier owner of this
                # account's partition, a raw send): resync and sign again once.
                self._nonces.forget(sender)
                if attempt == 2:
                    raise TaskError(f"nonce conflict for {sender} persisted") from None
            except TaskError:
                self._nonces.give_back(sender, record.nonce)
                await self._forget_refused(draft.task_id)
                raise
        raise AssertionError("unreachable")

    async def _forget_refused(self, task_id: str) -> None:
        """A refused transaction is in no pool: no one may send it again, and its record
        would lift the next owner's nonces past a nonce no transaction holds."""
        try:
            await self._journal.delete([task_id])
        except Exception as exc:  # Kafka away: the record stays, as after a crash
            log.warning("refused transaction kept in the journal task=%s error=%r", task_id, exc)

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

    async def _sign(self, node: NodeClient, draft: _Draft, gas: int) -> JournalRecord:
        sender = draft.sender

        async def pending_count() -> int:
            pending = int(await node.request("eth_getTransactionCount", [sender, "pending"]), 16)
            return max(pending, next_journaled_nonce(self._journal, sender))

        with _turn_step(draft, "nonce"):
            nonce = await self._nonces.take(sender, pending_count)
        unsigned = {k: v for k, v in draft.fields.items() if k != "from"}
        if self._chain_id is None:
            self._chain_id = int(await node.request("eth_chainId", []), 16)
        unsigned.update(gas=gas, gasPrice=draft.gas_price, nonce=nonce, chainId=self._chain_id)
        with _turn_step(draft, "sign"):
            signed = Account.sign_transaction(unsigned, draft.key)
        record = JournalRecord(
            task_id=draft.task_id,
            raw_tx=signed.raw_transaction.to_0x_hex(),
            tx_hash=signed.hash.to_0x_hex(),
            sender=sender,
            nonce=nonce,
        )
        with _turn_step(draft, "journal"):
            await self._journal.put(draft.task_id, record)
        return record

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
            return
        except (NonceTooLowError, ReplacementUnderpricedError) as exc:
            if await _is_known(node, record.tx_hash):
                return
            raise _NonceConflictError(exc.message) from None


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
