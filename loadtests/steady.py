"""A steady mixed load through the gateway, and the ledgers that judge what it got.

`SteadyLoad` runs a few concurrent clients for as long as it is told: readers loop over the
chain height, the token supply and a balance; writers mint one token at a time to a target
account (the platform admin signs, so every write shares one nonce sequence, the hardest
case for ordering and double execution); user writers, when given, each transfer one token
at a time from a user account (unlocked by its own user API key) to a target of its own.
Each call is one `Call` in `load.calls`.

The client is a careful one, not a forgiving one: it retries only when the connection could
not be opened (nothing was sent, so nothing can run twice). Every other failure is counted.

`ResultsLedger` reads the results topic from its start: every task a service accepted
(the ACCEPTED record it writes before the task) and every final result. `chain_audit` checks
the writes on chain: every transaction hash has a receipt, the signer's nonce rose by exactly
the number of distinct transactions, and the target's balance equals the successful mints.
"""

from __future__ import annotations

import asyncio
import contextlib
import time
from collections import defaultdict
from dataclasses import dataclass, field
from typing import Any

import httpx
from aiokafka import TopicPartition

from ethgw_wire.kafka import decode
from ethgw_wire.messages import ResultMessage, TaskMessage, TaskStatus
from ethgw_wire.settings import KafkaSettings
from ethgw_wire.topic_reader import Record, TopicReader
from geth_cluster.errors import RpcError
from geth_cluster.node_rpc import rpc_call

# A connection refused means nothing was sent: retry for this long (a gateway restart).
CONNECT_RETRY_S = 30.0
# How often a wait looks again: for results in the ledger (in memory), and on chain (a block
# is 1 s; a few calls to one node).
SETTLE_POLL_S = 0.1
CHAIN_POLL_S = 0.25
REQUEST_TIMEOUT_S = 60.0


@dataclass(frozen=True)
class Call:
    """One logical request as the client saw it."""

    kind: str  # "read" or "write"
    path: str
    started: float
    seconds: float
    status: int | None  # None: no HTTP answer at all (a transport error)
    retriable: bool  # the error envelope says retrying is safe
    code: str | None  # the error code, or the transport error's name
    task_id: str | None
    tx_hash: str | None
    reconnects: int  # connection attempts refused before this one got through

    @property
    def ok(self) -> bool:
        return self.status == 200

    @property
    def accepted(self) -> bool:
        """Answered with a task id to look up later (202): not a failure for a write."""
        return self.status == 202 and self.task_id is not None


@dataclass(frozen=True)
class UserWriter:
    """A writer signing with a user account: its API key, the account, where it sends."""

    api_key: str
    sender: str  # an account of that key, unlocked before the load starts
    target: str  # a fresh address the sender transfers one token to per call


@dataclass
class SteadyLoad:
    api: str
    api_key: str
    target: str  # the account the writers mint to
    readers: int = 4
    writers: int = 2
    pause_s: float = 0.05  # between one client's calls
    calls: list[Call] = field(default_factory=list)
    user_writers: list[UserWriter] = field(default_factory=list)

    async def run(self, stop: asyncio.Event) -> None:
        """Every client loops until `stop` is set; returns when all have finished."""
        limits = httpx.Limits(max_connections=self.readers + self.writers + 4)
        async with httpx.AsyncClient(
            base_url=self.api,
            headers={"X-API-Key": self.api_key},
            timeout=REQUEST_TIMEOUT_S,
            limits=limits,
            trust_env=False,
        ) as client:
            clients = [self._reader(client, i, stop) for i in range(self.readers)]
            clients += [self._writer(client, stop) for _ in range(self.writers)]
            clients += [self._user_writer(client, user, stop) for user in self.user_writers]
            await asyncio.gather(*clients)

    async def _reader(self, client: httpx.AsyncClient, number: int, stop: asyncio.Event) -> None:
        paths = [
            ("/conn/blockNum", {}),
            ("/token/total", {}),
            ("/token/balance", {"address": self.target}),
        ]
        turn = number
        while not stop.is_set():
            path, params = paths[turn % len(paths)]
            turn += 1
            await self._call(client, "read", "GET", path, params=params)
            await asyncio.sleep(self.pause_s)

    async def _writer(self, client: httpx.AsyncClient, stop: asyncio.Event) -> None:
        body = {"address": self.target, "value": 1}
        while not stop.is_set():
            await self._call(client, "write", "POST", "/token/add", json=body)
            await asyncio.sleep(self.pause_s)

    async def _user_writer(
        self, client: httpx.AsyncClient, user: UserWriter, stop: asyncio.Event
    ) -> None:
        body = {"from": user.sender, "to": user.target, "value": 1}
        headers = {"X-API-Key": user.api_key}
        while not stop.is_set():
            await self._call(client, "write", "POST", "/token/transfer", json=body, headers=headers)
            await asyncio.sleep(self.pause_s)

    async def _call(
        self, client: httpx.AsyncClient, kind: str, method: str, path: str, **kwargs: Any
    ) -> None:
        started = time.time()
        reconnects = 0
        while True:
            try:
                response = await client.request(method, path, **kwargs)
                break
            except (httpx.ConnectError, httpx.RemoteProtocolError) as error:
                # A refused connection sent nothing. A cut one may have, so only a read
                # (idempotent, RFC 9110 9.2.2) is sent again, as HTTP clients do.
                if isinstance(error, httpx.RemoteProtocolError) and method != "GET":
                    self._record(kind, path, started, None, type(error).__name__, reconnects)
                    return
                if time.time() - started > CONNECT_RETRY_S:
                    self._record(kind, path, started, None, type(error).__name__, reconnects)
                    return
                reconnects += 1
                await asyncio.sleep(0.25)
            except httpx.HTTPError as error:
                self._record(kind, path, started, None, type(error).__name__, reconnects)
                return
        self._record(kind, path, started, response, None, reconnects)

    def _record(
        self,
        kind: str,
        path: str,
        started: float,
        response: httpx.Response | None,
        transport_error: str | None,
        reconnects: int,
    ) -> None:
        body: dict[str, Any] = {}
        if response is not None:
            with contextlib.suppress(ValueError):
                parsed = response.json()
                body = parsed if isinstance(parsed, dict) else {}
        error = body.get("error") or {}
        data = body.get("data")
        self.calls.append(
            Call(
                kind=kind,
                path=path,
                started=started,
                seconds=time.time() - started,
                status=None if response is None else response.status_code,
                retriable=bool(error.get("retriable")),
                code=error.get("code") or transport_error,
                task_id=body.get("task_id"),
                tx_hash=data.get("tx_hash") if isinstance(data, dict) else None,
                reconnects=reconnects,
            )
        )

    def between(self, start: float, end: float) -> list[Call]:
        return [c for c in self.calls if start <= c.started < end]


@dataclass
class LoadVerdict:
    """What the clients saw in one window of the load."""

    reads: int
    writes: int
    read_failures: int  # a read answered neither 200 nor 202 (accepted, result to look up)
    read_deferred: list[str]  # task ids of reads answered 202: their results came later
    write_failures: int  # a write answered neither 200, 202 nor a retriable error
    write_retriable: int  # a write refused with a clear retriable error
    reconnects: int
    max_latency_s: float
    failures: list[Call]


def judge(calls: list[Call]) -> LoadVerdict:
    reads = [c for c in calls if c.kind == "read"]
    writes = [c for c in calls if c.kind == "write"]
    read_failures = [c for c in reads if not (c.ok or c.accepted)]
    retriable = [c for c in writes if not (c.ok or c.accepted) and c.retriable]
    write_failures = [c for c in writes if not (c.ok or c.accepted or c.retriable)]
    return LoadVerdict(
        reads=len(reads),
        writes=len(writes),
        read_failures=len(read_failures),
        read_deferred=[c.task_id for c in reads if c.accepted and c.task_id is not None],
        write_failures=len(write_failures),
        write_retriable=len(retriable),
        reconnects=sum(c.reconnects for c in calls),
        max_latency_s=max((c.seconds for c in calls), default=0.0),
        failures=[*read_failures, *write_failures, *retriable],
    )


# -- the results topic ---------------------------------------------------------------------


@dataclass(frozen=True)
class Seen:
    """A result record as read from the topic, with the broker's timestamp."""

    result: ResultMessage
    at: float


class ResultsLedger:
    """Every task on the task topics and every record of the results topic since their
    start, by task id.

    A task on a task topic is an accepted task: a service answers (200, or 202 with the
    id) only after Kafka acknowledged it, and writes an ACCEPTED record only when its
    wait runs out. So the ledger counts the tasks themselves, which covers every
    accepted task, whether or not an ACCEPTED record was written for it.
    """

    def __init__(self, settings: KafkaSettings) -> None:
        self._settings = settings
        self.accepted: dict[str, float] = {}  # task id -> when the service accepted it
        self._operations: dict[str, str] = {}
        self._accounts: dict[str, str | None] = {}  # task id -> the signer that orders it
        self.finals: dict[str, list[Seen]] = defaultdict(list)
        self._reader = TopicReader(settings, self._take, name="results-ledger")

    async def start(self) -> None:
        settings = self._settings
        # The broker made the topics with these counts (KafkaBroker.ensure_topics).
        counts = {
            settings.topic_results: settings.result_partitions,
            settings.topic_read: settings.task_partitions,
            settings.topic_write: settings.task_partitions,
        }
        partitions = [TopicPartition(t, n) for t, count in counts.items() for n in range(count)]
        await self._reader.start(partitions)

    async def stop(self) -> None:
        await self._reader.stop()

    def _take(self, record: Record) -> None:
        at = record.timestamp / 1000
        if record.topic == self._settings.topic_results:
            self._take_result(record.value, at)
        else:
            self._take_task(record.value, at)

    def _take_task(self, raw: bytes | None, at: float) -> None:
        try:
            task = decode(TaskMessage, raw)
        except ValueError:
            return  # a malformed task is not an accepted one
        self._accept(task.task_id, task.operation, at)
        self._accounts.setdefault(task.task_id, task.account)

    def _take_result(self, raw: bytes | None, at: float) -> None:
        try:
            result = decode(ResultMessage, raw)
        except ValueError:
            return
        if result.status is TaskStatus.ACCEPTED:
            self._accept(result.task_id, result.operation, at)
        else:
            self.finals[result.task_id].append(Seen(result, at))

    def _accept(self, task_id: str, operation: str, at: float) -> None:
        self.accepted.setdefault(task_id, at)
        self._operations.setdefault(task_id, operation)

    def operation(self, task_id: str) -> str | None:
        return self._operations.get(task_id)

    def account(self, task_id: str) -> str | None:
        """The signer a write task was ordered by (its Kafka key): an address, or admin."""
        return self._accounts.get(task_id)

    def accepted_between(self, start: float, end: float) -> list[str]:
        return [task_id for task_id, at in self.accepted.items() if start <= at < end]

    def unanswered(self, task_ids: list[str]) -> list[str]:
        return [t for t in task_ids if not self.finals.get(t)]

    async def settle(self, task_ids: list[str], timeout_s: float) -> list[str]:
        """Wait until every task has a final result; returns those still without one."""
        deadline = time.monotonic() + timeout_s
        # Polled: results arrive on the reader task, and a poll is cheap at this size.
        while (missing := self.unanswered(task_ids)) and time.monotonic() < deadline:  # noqa: ASYNC110
            await asyncio.sleep(SETTLE_POLL_S)
        return missing

    def final(self, task_id: str) -> ResultMessage | None:
        seen = self.finals.get(task_id)
        return seen[-1].result if seen else None

    def results_between(self, start: float, end: float) -> list[Seen]:
        return [s for seen in self.finals.values() for s in seen if start <= s.at < end]


# -- the chain -----------------------------------------------------------------------------


BALANCE_OF = "0x70a08231"  # balanceOf(address)


class Chain:
    """Plain JSON-RPC to one node (HTTP, or the sealer's IPC socket): what the audit needs,
    nothing through the platform."""

    def __init__(self, rpc_url: str) -> None:
        self._url = rpc_url
        self._client = httpx.AsyncClient(timeout=10.0, trust_env=False)

    async def aclose(self) -> None:
        await self._client.aclose()

    async def call(self, method: str, *params: Any) -> Any:
        try:
            return await rpc_call(self._client, self._url, method, list(params))
        except RpcError as error:
            raise RuntimeError(f"{method}: {error}") from None

    async def nonce(self, address: str, block: str = "latest") -> int:
        return int(await self.call("eth_getTransactionCount", address, block), 16)

    async def token_balance(self, token: str, account: str) -> int:
        data = BALANCE_OF + account.lower().removeprefix("0x").rjust(64, "0")
        return int(await self.call("eth_call", {"to": token, "data": data}, "latest"), 16)

    async def wait_mined(self, address: str, timeout_s: float) -> int:
        """Until the account has no pending transaction; returns its nonce."""
        deadline = time.monotonic() + timeout_s
        while True:
            latest, pending = await self.nonce(address), await self.nonce(address, "pending")
            if latest == pending or time.monotonic() > deadline:
                return latest
            await asyncio.sleep(CHAIN_POLL_S)

    async def receipt_ok(self, tx_hash: str) -> bool:
        receipt = await self.call("eth_getTransactionReceipt", tx_hash)
        return receipt is not None and receipt.get("status") == "0x1"


MINING_TIMEOUT_S = 60.0


async def _wait_receipts(chain: Chain, hashes: set[str], timeout_s: float) -> list[str]:
    """The hashes still without a successful receipt after `timeout_s`."""
    deadline = time.monotonic() + timeout_s
    waiting = set(hashes)
    while waiting:
        waiting = {h for h in waiting if not await chain.receipt_ok(h)}
        if not waiting or time.monotonic() > deadline:
            break
        await asyncio.sleep(CHAIN_POLL_S)
    return sorted(waiting)


@dataclass(frozen=True)
class ChainAudit:
    minted_ok: int  # write tasks that succeeded with a transaction hash
    hashes: int  # distinct transaction hashes among them
    unmined: int  # hashes with no successful receipt: a write accepted and lost
    nonce_delta: int  # transactions the signer sent in the window
    balance_delta: int  # tokens the target gained
    executed_twice: int  # executions beyond one per write task, by nonce or by balance
    unmined_hashes: tuple[str, ...] = ()


async def chain_audit(
    chain: Chain,
    ledger: ResultsLedger,
    write_tasks: list[str],
    signer: str,
    token: str,
    target: str,
    nonce_before: int,
    balance_before: int,
) -> ChainAudit:
    """Check the window's writes on chain once the signer has nothing pending."""
    hashes_by_task: dict[str, set[str]] = defaultdict(set)
    for task_id in write_tasks:
        for seen in ledger.finals.get(task_id, []):
            data = seen.result.data
            if seen.result.status is TaskStatus.SUCCEEDED and isinstance(data, dict):
                hashes_by_task[task_id].add(str(data["tx_hash"]))
    hashes = {h for found in hashes_by_task.values() for h in found}
    # The signer's pending count is this node's view only: a transaction still travelling
    # from the node that took it (a node just restarted, say) is not in it yet. So wait for
    # every receipt itself.
    unmined = await _wait_receipts(chain, hashes, MINING_TIMEOUT_S)
    nonce_after = await chain.wait_mined(signer, MINING_TIMEOUT_S)
    balance_delta = await chain.token_balance(token, target) - balance_before
    nonce_delta = nonce_after - nonce_before
    minted = len(hashes_by_task)
    return ChainAudit(
        minted_ok=minted,
        hashes=len(hashes),
        unmined=len(unmined),
        nonce_delta=nonce_delta,
        balance_delta=balance_delta,
        executed_twice=max(0, nonce_delta - minted, balance_delta - minted, len(hashes) - minted),
        unmined_hashes=tuple(unmined),
    )
