"""The transaction sender with an in-memory journal and node: what it signs, journals
and broadcasts (the real chain path runs in tests/pipeline)."""

from __future__ import annotations

import asyncio
from collections.abc import Sequence
from dataclasses import dataclass
from typing import Any, cast

import pytest
from eth_account import Account
from prometheus_client import REGISTRY

from ethgw_wire.errors import (
    InsufficientFundsError,
    NodeUnavailableError,
    RevertedError,
    TaskError,
)
from ethgw_wire.operations import ADMIN_SIGNER
from ethgw_wire.topic_mirror import MemoryTable
from provider.accounts import AccountBook
from provider.chain import AlreadyKnownError, NonceTooLowError
from provider.nonces import NonceTracker
from provider.transactions import JournalRecord, Sent, TransactionSender
from service_kit.keyfiles import ChainAccount, Scrypt
from tests.provider.fake_node import FakeNode

RECIPIENT = "0x" + "22" * 20


@dataclass
class _Signer:
    """A platform signer without a keystore file: its key is at hand."""

    address: str
    key: bytes

    def private_key(self) -> bytes:
        return self.key


def _sender(
    journal: MemoryTable[JournalRecord] | None = None, signer: _Signer | None = None
) -> tuple[TransactionSender, MemoryTable[JournalRecord]]:
    """A provider's sender; given the journal and signer of another, a second provider."""
    if signer is None:
        account = Account.create()
        signer = _Signer(account.address, bytes(account.key))
    signers = {ADMIN_SIGNER: cast(ChainAccount, signer)}
    accounts = AccountBook(MemoryTable("accounts"), Scrypt(2, 4), signers)
    journal = journal if journal is not None else MemoryTable("journal")
    return TransactionSender(accounts, NonceTracker(), journal, None, 1.25), journal


class _JournalCheckingNode(FakeNode):
    """Notes, at each broadcast, whether the journal already held the transaction."""

    def __init__(self, journal: MemoryTable[JournalRecord]) -> None:
        super().__init__()
        self.journal = journal
        self.journaled_first: list[bool] = []

    def _take(self, raw_tx: str) -> str:
        held = {record.raw_tx for _, record in self.journal.items()}
        self.journaled_first.append(raw_tx in held)
        return super()._take(raw_tx)


def _transfer(value: int = 1) -> dict[str, Any]:
    return {"to": RECIPIENT, "value": value}


async def test_a_retried_task_broadcasts_the_journaled_bytes_again() -> None:
    """A task sent again (on another node) re-broadcasts the same signed transaction."""
    sender, journal = _sender()
    first, second = FakeNode("node-1"), FakeNode("node-2")
    sent = await sender.send(first, "task-1", ADMIN_SIGNER, _transfer())
    again = await sender.send(second, "task-1", ADMIN_SIGNER, _transfer())
    assert second.received == first.received
    assert again.tx_hash == sent.tx_hash
    assert again.rebroadcast
    assert len(journal) == 1


async def test_the_transaction_is_journaled_before_it_is_broadcast() -> None:
    """The node is sent bytes the journal already holds."""
    sender, journal = _sender()
    node = _JournalCheckingNode(journal)
    await sender.send(node, "task-1", ADMIN_SIGNER, _transfer())
    assert node.journaled_first == [True]


async def test_a_refused_transaction_leaves_no_record() -> None:
    """A transaction no node took is deleted from the journal: no one sends it again,
    and the next owner of its account does not count its nonce as taken."""
    sender, journal = _sender()
    node = FakeNode()
    node.refusals.append(InsufficientFundsError("eth_sendRawTransaction: insufficient funds"))
    with pytest.raises(InsufficientFundsError):
        await sender.send(node, "task-1", ADMIN_SIGNER, _transfer())
    assert journal.get("task-1") is None
    assert node.received == []


def _platform(signer: _Signer) -> dict[str, ChainAccount]:
    return {ADMIN_SIGNER: cast(ChainAccount, signer)}


def _signer() -> _Signer:
    account = Account.create()
    return _Signer(account.address, bytes(account.key))


async def test_a_new_owner_signs_above_the_nonces_the_journal_holds() -> None:
    """Another provider that takes the account over, on a node the previous owner's last
    transactions have not reached, does not sign their nonces again."""
    signer = _signer()
    previous, journal = _sender(signer=signer)
    for i in range(3):
        await previous.send(FakeNode("node-3"), f"task-{i}", ADMIN_SIGNER, _transfer())
    next_owner, _ = _sender(journal, signer)
    sent = await next_owner.send(FakeNode("node-2"), "task-3", ADMIN_SIGNER, _transfer())
    assert sent.nonce == 3


async def test_a_forgotten_account_resyncs_above_the_journal() -> None:
    """After forget_all (a rebalance), the next nonce is taken anew, above the journal's."""
    nonces = NonceTracker()
    signer = _signer()
    signers = {ADMIN_SIGNER: cast(ChainAccount, signer)}
    accounts = AccountBook(MemoryTable("accounts"), Scrypt(2, 4), signers)
    journal: MemoryTable[JournalRecord] = MemoryTable("journal")
    sender = TransactionSender(accounts, nonces, journal, None, 1.25)
    await sender.send(FakeNode("node-1"), "task-0", ADMIN_SIGNER, _transfer())
    nonces.forget_all()
    sent = await sender.send(FakeNode("node-2"), "task-1", ADMIN_SIGNER, _transfer())
    assert sent.nonce == 1


async def test_one_signers_writes_take_nonces_in_task_order() -> None:
    """Concurrent writes of one signer get consecutive nonces, in the order they started."""
    sender, journal = _sender()
    node = FakeNode()
    sends = [sender.send(node, f"task-{i}", ADMIN_SIGNER, _transfer(i + 1)) for i in range(4)]
    sent = await asyncio.gather(*sends)
    assert [s.nonce for s in sent] == [0, 1, 2, 3]
    in_order = [journal.get(f"task-{i}") for i in range(4)]
    assert node.received == [record.raw_tx for record in in_order if record is not None]


async def test_a_node_that_already_holds_the_transaction_counts_as_sent() -> None:
    """ "already known" for the journaled bytes is success, not a failure."""
    sender, _ = _sender()
    node = FakeNode()
    node.refusals.append(AlreadyKnownError("eth_sendRawTransaction: already known"))
    sent = await sender.send(node, "task-1", ADMIN_SIGNER, _transfer())
    assert sent.nonce == 0


async def test_every_transaction_a_node_took_is_told_with_that_node() -> None:
    """The spreading hook hears of each broadcast the node took, "already known" included,
    with the bytes and the node's URL."""
    told: list[tuple[str, str]] = []
    accounts = AccountBook(MemoryTable("accounts"), Scrypt(2, 4), _platform(_signer()))
    journal: MemoryTable[JournalRecord] = MemoryTable("journal")
    sender = TransactionSender(
        accounts, NonceTracker(), journal, None, 1.25, on_broadcast=lambda *t: told.append(t)
    )
    first, second = FakeNode("node-1"), FakeNode("node-2")
    second.refusals.append(AlreadyKnownError("eth_sendRawTransaction: already known"))
    await sender.send(first, "task-1", ADMIN_SIGNER, _transfer())
    await sender.send(second, "task-2", ADMIN_SIGNER, _transfer())
    one, two = journal.get("task-1"), journal.get("task-2")
    assert one is not None
    assert two is not None
    assert told == [(one.raw_tx, first.url), (two.raw_tx, second.url)]


async def test_a_refused_transaction_is_not_told() -> None:
    """Bytes no node took are not handed to any other node."""
    told: list[tuple[str, str]] = []
    accounts = AccountBook(MemoryTable("accounts"), Scrypt(2, 4), _platform(_signer()))
    sender = TransactionSender(
        accounts,
        NonceTracker(),
        MemoryTable("journal"),
        None,
        1.25,
        on_broadcast=lambda *t: told.append(t),
    )
    node = FakeNode()
    node.refusals.append(InsufficientFundsError("eth_sendRawTransaction: insufficient funds"))
    with pytest.raises(InsufficientFundsError):
        await sender.send(node, "task-1", ADMIN_SIGNER, _transfer())
    assert told == []


async def test_a_nonce_taken_by_another_transaction_is_signed_again() -> None:
    """ "nonce too low" for a transaction the node does not know: resync and sign once more."""
    sender, journal = _sender()
    node = FakeNode()
    node.refusals.append(NonceTooLowError("eth_sendRawTransaction: nonce too low"))
    sent = await sender.send(node, "task-1", ADMIN_SIGNER, _transfer())
    record = journal.get("task-1")
    assert record is not None
    assert node.received == [record.raw_tx]
    assert sent.tx_hash == record.tx_hash


async def test_a_refused_transaction_gives_its_nonce_back() -> None:
    """A write the node refuses does not leave a gap: the next write takes its nonce."""
    sender, _ = _sender()
    node = FakeNode()
    node.refusals.append(TaskError("eth_sendRawTransaction: the node refused"))
    with pytest.raises(TaskError):
        await sender.send(node, "task-1", ADMIN_SIGNER, _transfer())
    sent = await sender.send(node, "task-2", ADMIN_SIGNER, _transfer())
    assert sent.nonce == 0


class _TurnWatchingNode(FakeNode):
    """Holds every broadcast until `release` is set, and notes what each estimate saw."""

    def __init__(self) -> None:
        super().__init__()
        self.release = asyncio.Event()
        self.broadcasts_seen_by_estimates: list[int] = []
        self.gas_price_reads = 0
        self.estimate_refusals: list[TaskError] = []

    async def request(self, method: str, params: Sequence[Any]) -> Any:
        if method == "eth_gasPrice":
            self.gas_price_reads += 1
        if method == "eth_sendRawTransaction":
            await self.release.wait()
        return await super().request(method, params)

    async def estimate_gas(
        self, tx: dict[str, Any], abi: Sequence[dict[str, Any]] | None = None
    ) -> int:
        self.broadcasts_seen_by_estimates.append(len(self.received))
        if self.estimate_refusals:
            raise self.estimate_refusals.pop(0)
        return await super().estimate_gas(tx, abi)


def _creation() -> dict[str, Any]:
    return {"data": "0x6080604052"}


def _call() -> dict[str, Any]:
    return {"to": RECIPIENT, "data": "0xa9059cbb"}


async def _settle() -> None:
    for _ in range(20):
        await asyncio.sleep(0)


async def test_a_contract_creation_is_estimated_before_the_accounts_turn() -> None:
    """A creation's estimate runs while an earlier write of its account holds the turn."""
    sender, _ = _sender()
    node = _TurnWatchingNode()
    first = asyncio.create_task(sender.send(node, "task-1", ADMIN_SIGNER, _transfer()))
    second = asyncio.create_task(sender.send(node, "task-2", ADMIN_SIGNER, _creation()))
    await _settle()
    assert node.broadcasts_seen_by_estimates == [0]
    node.release.set()
    await asyncio.gather(first, second)


async def test_a_contract_call_is_estimated_after_the_accounts_earlier_writes_went_out() -> None:
    """A call's estimate sees the pending state the account's earlier write left."""
    sender, _ = _sender()
    node = _TurnWatchingNode()
    first = asyncio.create_task(sender.send(node, "task-1", ADMIN_SIGNER, _creation()))
    second = asyncio.create_task(sender.send(node, "task-2", ADMIN_SIGNER, _call()))
    await _settle()
    node.release.set()
    await asyncio.gather(first, second)
    assert node.broadcasts_seen_by_estimates == [0, 1]


async def test_a_creation_refused_before_its_turn_is_estimated_again_in_it() -> None:
    """A creation whose early estimate fails (it may need an earlier write) is estimated in turn."""
    sender, journal = _sender()
    node = _TurnWatchingNode()
    node.release.set()
    node.estimate_refusals.append(RevertedError("the contract refused: no token yet"))
    await sender.send(node, "task-1", ADMIN_SIGNER, _creation())
    record = journal.get("task-1")
    assert record is not None
    assert len(node.broadcasts_seen_by_estimates) == 2


async def test_an_unreachable_node_fails_the_write_before_its_turn() -> None:
    """A node that cannot be reached is not asked again while the account's turn is held."""
    sender, journal = _sender()
    node = _TurnWatchingNode()
    node.release.set()
    node.estimate_refusals.append(NodeUnavailableError("node-1 is unreachable"))
    with pytest.raises(NodeUnavailableError):
        await sender.send(node, "task-1", ADMIN_SIGNER, _creation())
    assert len(node.broadcasts_seen_by_estimates) == 1
    assert journal.get("task-1") is None


async def test_the_gas_price_is_read_before_the_accounts_turn() -> None:
    """A write waiting for its account's turn already holds its gas price."""
    sender, _ = _sender()
    node = _TurnWatchingNode()
    first = asyncio.create_task(sender.send(node, "task-1", ADMIN_SIGNER, _transfer()))
    second = asyncio.create_task(sender.send(node, "task-2", ADMIN_SIGNER, _transfer()))
    await _settle()
    assert node.gas_price_reads == 2
    node.release.set()
    await asyncio.gather(first, second)


async def test_each_turn_on_a_platform_account_is_measured() -> None:
    """The wait for and the length of the admin account's turn are observed once per write."""

    def turns() -> float:
        labels = {"signer": ADMIN_SIGNER}
        count = REGISTRY.get_sample_value("ethgw_provider_account_turn_hold_seconds_count", labels)
        return count or 0.0

    sender, _ = _sender()
    before = turns()
    await sender.send(FakeNode(), "task-1", ADMIN_SIGNER, _transfer())
    assert turns() == before + 1


async def test_each_step_of_a_turn_is_measured() -> None:
    """A transfer's turn is observed as its nonce, signature, journal write and broadcast."""

    def steps() -> dict[str, float]:
        def count(step: str) -> float:
            labels = {"signer": ADMIN_SIGNER, "step": step}
            name = "ethgw_provider_account_turn_step_seconds_count"
            return REGISTRY.get_sample_value(name, labels) or 0.0

        return {step: count(step) for step in ("estimate", "nonce", "sign", "journal", "broadcast")}

    sender, _ = _sender()
    before = steps()
    await sender.send(FakeNode(), "task-1", ADMIN_SIGNER, _transfer())
    added = {step: n - before[step] for step, n in steps().items()}
    assert added == {"estimate": 0, "nonce": 1, "sign": 1, "journal": 1, "broadcast": 1}


class _LaterAnswersFirst(FakeNode):
    """Answers the gas price of each write sooner than that of the write before it."""

    def __init__(self, writes: int) -> None:
        super().__init__()
        self.delays = [0.01 * (writes - i) for i in range(writes)]

    async def request(self, method: str, params: Sequence[Any]) -> Any:
        if method == "eth_gasPrice":
            await asyncio.sleep(self.delays.pop(0))
        return await super().request(method, params)


async def test_writes_keep_task_order_whatever_order_their_nodes_answer_in() -> None:
    """A write's place in line is taken before it reads anything: nonces follow task order."""
    sender, _ = _sender()
    node = _LaterAnswersFirst(4)
    sends = [sender.send(node, f"task-{i}", ADMIN_SIGNER, _transfer(i + 1)) for i in range(4)]
    sent = await asyncio.gather(*sends)
    assert [s.nonce for s in sent] == [0, 1, 2, 3]


async def test_a_write_that_fails_before_its_turn_gives_its_place_up() -> None:
    """The write behind one whose node cannot be reached still gets its turn."""
    sender, _ = _sender()
    node = _TurnWatchingNode()
    node.release.set()
    node.estimate_refusals.append(NodeUnavailableError("node-1 is unreachable"))
    failing = sender.send(node, "task-1", ADMIN_SIGNER, _creation())
    behind = sender.send(node, "task-2", ADMIN_SIGNER, _transfer())
    outcomes = await asyncio.gather(failing, behind, return_exceptions=True)
    assert isinstance(outcomes[0], NodeUnavailableError)
    assert not isinstance(outcomes[1], BaseException)
    assert outcomes[1].nonce == 0


class _HeldNode(FakeNode):
    """Answers nothing until `release` is set, so writes line up ready behind one turn."""

    def __init__(self) -> None:
        super().__init__()
        self.release = asyncio.Event()

    async def request(self, method: str, params: Sequence[Any]) -> Any:
        if not self.release.is_set():
            await self.release.wait()
        return await super().request(method, params)


async def test_a_write_cancelled_while_waiting_leaves_the_line_moving() -> None:
    """A write cancelled in line (its task gave up) does not hold up the writes behind it."""
    sender, _ = _sender()
    node = _HeldNode()
    first = asyncio.create_task(sender.send(node, "task-1", ADMIN_SIGNER, _transfer()))
    second = asyncio.create_task(sender.send(node, "task-2", ADMIN_SIGNER, _transfer()))
    third = asyncio.create_task(sender.send(node, "task-3", ADMIN_SIGNER, _transfer()))
    await _settle()
    second.cancel()
    node.release.set()
    done = await asyncio.wait_for(asyncio.gather(first, third), 5)
    assert [s.nonce for s in done] == [0, 1]


def _turn_writes() -> tuple[float, float]:
    """Turns on the admin account so far, and the writes they signed."""
    labels = {"signer": ADMIN_SIGNER}
    name = "ethgw_provider_account_turn_writes"
    count = REGISTRY.get_sample_value(f"{name}_count", labels) or 0.0
    return count, REGISTRY.get_sample_value(f"{name}_sum", labels) or 0.0


async def _lined_up(
    sender: TransactionSender, node: _HeldNode, count: int
) -> list[Sent | BaseException]:
    """`count` transfers of the admin account, all waiting for their turn, then let go."""
    sends = [
        asyncio.create_task(sender.send(node, f"task-{i}", ADMIN_SIGNER, _transfer(i + 1)))
        for i in range(count)
    ]
    await _settle()
    node.release.set()
    return list(await asyncio.gather(*sends, return_exceptions=True))


async def test_the_ready_writes_behind_a_turn_go_out_in_it() -> None:
    """Writes waiting ready behind an account's turn are signed, journaled and sent in it."""
    sender, journal = _sender()
    node = _HeldNode()
    turns_before, writes_before = _turn_writes()
    sent = await _lined_up(sender, node, 4)
    turns, writes = _turn_writes()
    assert (turns - turns_before, writes - writes_before) == (1, 4)
    assert [s.nonce for s in sent if isinstance(s, Sent)] == [0, 1, 2, 3]
    assert node.received == [journal.get(f"task-{i}").raw_tx for i in range(4)]  # type: ignore[union-attr]


class _RefusesSecondBroadcast(_HeldNode):
    """Refuses the second transaction broadcast to it, as a node short of funds would."""

    def __init__(self) -> None:
        super().__init__()
        self.broadcasts = 0

    def _take(self, raw_tx: str) -> str:
        self.broadcasts += 1
        if self.broadcasts == 2:
            raise InsufficientFundsError("eth_sendRawTransaction: insufficient funds")
        return super()._take(raw_tx)


async def test_the_writes_behind_a_refused_one_in_a_turn_take_its_nonce() -> None:
    """A write refused in a shared turn leaves no gap: the writes behind it are signed again
    on the next nonces, and its own record is deleted."""
    sender, journal = _sender()
    node = _RefusesSecondBroadcast()
    first, refused, third = await _lined_up(sender, node, 3)
    assert isinstance(refused, InsufficientFundsError)
    assert isinstance(first, Sent)
    assert isinstance(third, Sent)
    assert journal.get("task-1") is None
    assert [first.nonce, third.nonce] == [0, 1]
    assert node.pending_count(first.sender) == 2


async def test_a_nonce_conflict_in_a_turn_signs_every_write_of_it_again() -> None:
    """After "nonce too low" in a shared turn, its writes are signed again and all go out."""
    sender, journal = _sender()
    node = _HeldNode()
    node.refusals.append(NonceTooLowError("eth_sendRawTransaction: nonce too low"))
    sent = await _lined_up(sender, node, 3)
    assert [s.nonce for s in sent if isinstance(s, Sent)] == [0, 1, 2]
    assert node.received == [journal.get(f"task-{i}").raw_tx for i in range(3)]  # type: ignore[union-attr]
