"""One fault scenario under a steady load: inject, measure, settle, audit, and a table row."""

from __future__ import annotations

import asyncio
import secrets
import time
from collections.abc import Awaitable, Callable
from dataclasses import dataclass, field
from pathlib import Path

import httpx

from devstack.sandbox import Sandbox
from ethgw_wire.messages import ResultMessage, TaskStatus
from geth_cluster.snapshot import NodeSnapshot
from loadtests.steady import (
    Chain,
    LoadVerdict,
    ResultsLedger,
    Seen,
    SteadyLoad,
    UserWriter,
    chain_audit,
    judge,
)
from tests.faults.diagnosis import diagnose

WARM_UP_S = 3.0  # load before the fault
AFTER_S = 3.0  # load after the stack is whole again
WHOLE_TIMEOUT_S = 90.0  # the stack must be whole again within this after the fault
SETTLE_TIMEOUT_S = 90.0  # every accepted task must have its result within this
SLOW_S = 2.0  # a call this slow counts as disturbed by the fault
USER_TOKENS = 100_000  # what the admin mints to each user account before the load
USER_UNLOCK_S = 3600  # a user account's unlock outlives the scenario
USER_ACCOUNTS_PER_KEY = 5  # a user key's faucet budget (5 ether) funds 5 accounts
USER_ACCOUNT_TRIES = 10


@dataclass(frozen=True)
class UserAccount:
    """A user key's account, unlocked before the fault, and the provider that unlocked it."""

    api_key: str
    address: str
    unlocked_by: str


@dataclass
class Row:
    """One line of the fault table."""

    scenario: str
    verdict: LoadVerdict
    lost: int  # accepted tasks without a result + successful writes not on chain
    twice: int  # writes executed more than once (nonce, balance and hash checks)
    disturbed_s: float  # from the fault until the last failed or slow call ended
    whole_s: float | None  # from the fault until the stack had its full shape again
    notes: list[str] = field(default_factory=list)
    deferred_failed: int = 0  # reads answered 202 whose task did not succeed after all
    account_locked: int = 0  # user writes answered account_locked (their unlock was lost)
    by_grant: int = 0  # user writes run on a provider other than the one that unlocked
    lost_detail: list[str] = field(default_factory=list)  # what became of each lost hash

    def cells(self) -> list[str]:
        v = self.verdict
        whole = f"> {WHOLE_TIMEOUT_S:.0f}" if self.whole_s is None else f"{self.whole_s:.1f}"
        return [
            self.scenario,
            f"{v.reads}/{v.writes}",
            f"{v.read_failures} ({len(v.read_deferred)} deferred)",
            f"{v.write_failures} (+{v.write_retriable} retriable)",
            str(self.lost),
            str(self.twice),
            f"{v.max_latency_s:.1f}",
            f"{self.disturbed_s:.1f}",
            whole,
            "; ".join(self.notes),
        ]


HEADER = [
    "scenario",
    "reads/writes",
    "read failures (202 deferred)",
    "write failures",
    "writes lost",
    "executed twice",
    "max latency s",
    "disturbed s",
    "whole again s",
    "notes",
]

REPORT: list[Row] = []


def table(rows: list[Row]) -> str:
    lines = ["| " + " | ".join(HEADER) + " |", "|" + "---|" * len(HEADER)]
    lines += ["| " + " | ".join(row.cells()) + " |" for row in rows]
    return "\n".join(lines)


def write_report(rows: list[Row], path: Path) -> None:
    path.parent.mkdir(parents=True, exist_ok=True)
    stamp = time.strftime("%Y-%m-%d %H:%M UTC", time.gmtime())
    details = [f"- {row.scenario}: {line}" for row in rows for line in row.lost_detail]
    lost = "\n\nLost writes:\n\n" + "\n".join(details) if details else ""
    path.write_text(f"# Fault table ({stamp})\n\n{table(rows)}{lost}\n")


@dataclass
class Faults:
    """What a scenario needs: the sandbox stack, the results ledger and the chain."""

    sandbox: Sandbox
    ledger: ResultsLedger
    chain: Chain

    async def exercise(
        self,
        name: str,
        inject: Callable[[], Awaitable[None]],
        restore: Callable[[], Awaitable[None]] | None = None,
        *,
        notes: list[str] | None = None,
        users: list[UserAccount] | None = None,
    ) -> Row:
        """Load, inject the fault, restore the stack, let the load run on, then judge.
        `users`: user accounts that write beside the admin, each to a target of its own."""
        sandbox = self.sandbox
        assert sandbox.platform is not None
        signer, token = sandbox.platform.admin_address, sandbox.platform.token_address
        target = "0x" + secrets.token_hex(20)
        nonce_before = await self.chain.wait_mined(signer, 30.0)
        first_block = int(await self.chain.call("eth_blockNumber"), 16)
        writers = [
            UserWriter(u.api_key, u.address, "0x" + secrets.token_hex(20)) for u in users or []
        ]
        user_nonces = [await self.chain.wait_mined(w.sender, 30.0) for w in writers]
        load = SteadyLoad(sandbox.api, sandbox.admin_key, target, user_writers=writers)
        stop = asyncio.Event()
        started = time.time()
        running = asyncio.create_task(load.run(stop))
        try:
            await asyncio.sleep(WARM_UP_S)
            fault_at = time.time()
            await inject()
            if restore is not None:
                await restore()
            whole_s = await self._until_whole(fault_at)
            await asyncio.sleep(AFTER_S)
        finally:
            stop.set()
            await running
        ended = time.time()
        tasks = self.ledger.accepted_between(started - 1.0, ended + 1.0)
        missing = await self.ledger.settle(tasks, SETTLE_TIMEOUT_S)
        writes = [t for t in tasks if self.ledger.operation(t) == "token.mint"]
        audit = await chain_audit(
            self.chain, self.ledger, writes, signer, token, target, nonce_before, 0
        )
        unmined, twice, unmined_hashes = audit.unmined, audit.executed_twice, audit.unmined_hashes
        for writer, user_nonce in zip(writers, user_nonces, strict=True):
            transfers = [
                t
                for t in tasks
                if self.ledger.operation(t) == "token.transfer"
                and self.ledger.account(t) == writer.sender
            ]
            user_audit = await chain_audit(
                self.chain, self.ledger, transfers, writer.sender, token, writer.target,
                user_nonce, 0,
            )  # fmt: skip
            unmined += user_audit.unmined
            twice = max(twice, user_audit.executed_twice)
            unmined_hashes += user_audit.unmined_hashes
        verdict = judge(load.calls)
        disturbed = [
            c
            for c in load.calls
            if c.started + c.seconds >= fault_at and (c in verdict.failures or c.seconds > SLOW_S)
        ]
        disturbed_s = max((c.started + c.seconds - fault_at for c in disturbed), default=0.0)
        row = Row(
            name,
            verdict,
            lost=len(missing) + unmined,
            twice=twice,
            disturbed_s=max(0.0, disturbed_s),
            whole_s=whole_s,
            notes=list(notes or []),
        )
        for task_id in verdict.read_deferred:
            final = self.ledger.final(task_id)
            if final is None or final.status is not TaskStatus.SUCCEEDED:
                row.deferred_failed += 1
        if users:
            self._note_user_writes(row, load, users, started)
        if missing or unmined:
            row.notes.append(f"without a result: {len(missing)}; not on chain: {unmined}")
            row.notes.append(f"unmined: {', '.join(unmined_hashes[:3])}")
            row.lost_detail = await self._diagnose(list(unmined_hashes), first_block)
        if verdict.failures:
            codes = sorted({f"{c.kind} {c.status} {c.code}" for c in verdict.failures})
            row.notes.append("seen: " + ", ".join(codes))
        REPORT.append(row)
        return row

    async def _diagnose(self, lost: list[str], first_block: int) -> list[str]:
        """One line per lost hash (printed, and kept for the fault table's end)."""
        nodes = {s.name: Chain(s.rpc_url) for s in self.sandbox.cluster.specs}
        try:
            found = await diagnose(lost, self.ledger, self.chain, nodes, first_block)
        finally:
            for node in nodes.values():
                await node.aclose()
        lines = [f.line() for f in found]
        for line in lines:
            print(line)
        return lines

    def _note_user_writes(
        self, row: Row, load: SteadyLoad, users: list[UserAccount], since: float
    ) -> None:
        """Count the user writes refused account_locked and those signed from a grant."""
        user_calls = [c for c in load.calls if c.path == "/token/transfer"]
        row.account_locked = sum(1 for c in user_calls if c.code == "account_locked")
        unlocker = {u.address: u.unlocked_by for u in users}
        ran = [
            s.result
            for s in self.ledger.results_between(since, time.time() + 1)
            if s.result.operation == "token.transfer" and s.result.status is TaskStatus.SUCCEEDED
        ]
        row.by_grant = sum(
            1
            for r in ran
            if r.provider != unlocker.get(str(self.ledger.account(r.task_id)))
            and self.ledger.account(r.task_id) in unlocker
        )
        row.notes.append(
            f"user writes: {len(user_calls)} from {len(users)} user accounts, "
            f"{row.by_grant} signed on a provider that did not unlock them, "
            f"account_locked: {row.account_locked}"
        )

    async def user_accounts(self, on_provider: str, count: int = 2) -> list[UserAccount]:
        """`count` accounts of new user API keys, funded, given tokens and unlocked, the
        first of them unlocked on `on_provider` (accounts are made, `count` at once, until
        one is: each has an even chance, so 10 tries miss once in a thousand)."""
        made: list[UserAccount] = []
        async with httpx.AsyncClient(
            base_url=self.sandbox.api, timeout=60.0, trust_env=False
        ) as client:
            keys: list[str] = []
            for first in range(0, USER_ACCOUNT_TRIES, count):
                attempts = range(first, min(first + count, USER_ACCOUNT_TRIES))
                while len(keys) * USER_ACCOUNTS_PER_KEY <= attempts[-1]:
                    keys.append(await self._new_user_key(client))
                made += await asyncio.gather(
                    *(
                        self._user_account(client, keys[a // USER_ACCOUNTS_PER_KEY])
                        for a in attempts
                    )
                )
                if any(u.unlocked_by == on_provider for u in made) and len(made) >= count:
                    break
        made.sort(key=lambda u: u.unlocked_by != on_provider)
        assert made[0].unlocked_by == on_provider, f"no account unlocked on {on_provider}"
        return made[:count]

    async def _new_user_key(self, client: httpx.AsyncClient) -> str:
        """A new user API key, once the gateway takes it (it reloads its keys every 2 s)."""
        from gateway.keys import create_key

        key = create_key(self.sandbox.root / "state", f"faults-{secrets.token_hex(3)}", "user")
        for _ in range(100):
            answer = await client.get("/conn/blockNum", headers={"X-API-Key": key})
            if answer.status_code != 401:
                return key
            await asyncio.sleep(0.1)
        raise TimeoutError("the gateway did not take the new user key")

    async def _user_account(self, client: httpx.AsyncClient, key: str) -> UserAccount:
        user = {"X-API-Key": key}
        admin = {"X-API-Key": self.sandbox.admin_key}
        password = secrets.token_hex(8)
        made = await client.post("/admin/new", json={"password": password}, headers=user)
        assert made.status_code == 200, made.text
        address = str(made.json()["data"]["address"])
        assert made.json()["data"]["funded_wei"] > 0, "the key's faucet budget is spent"
        mint = {"address": address, "value": USER_TOKENS, "waitReceipt": True}
        minted = await client.post("/token/add", json=mint, headers=admin)
        assert minted.status_code == 200, minted.text
        unlock = {"address": address, "password": password, "durationS": USER_UNLOCK_S}
        unlocked = await client.post("/admin/unlock", json=unlock, headers=user)
        assert unlocked.status_code == 200, unlocked.text
        task_id = str(unlocked.json()["task_id"])
        await self.ledger.settle([task_id], 30.0)
        result = self.ledger.final(task_id)
        assert result is not None
        assert result.provider is not None
        return UserAccount(key, address, result.provider)

    async def writes_provider(self) -> str:
        """The provider that executes the platform admin's writes (it owns their partition):
        the one that ran the latest write, after a probe write if none has run yet."""
        if not self._latest_writes():
            async with httpx.AsyncClient(
                base_url=self.sandbox.api,
                headers={"X-API-Key": self.sandbox.admin_key},
                timeout=60.0,
                trust_env=False,
            ) as client:
                probe = {"address": "0x" + "99" * 20, "value": 1, "waitReceipt": True}
                response = await client.post("/token/add", json=probe)
                assert response.status_code == 200, response.text
            await self.ledger.settle([str(response.json()["task_id"])], 30.0)
        writes = self._latest_writes()
        assert writes, "the probe write has no result"
        return str(max(writes, key=lambda s: s.at).result.provider)

    def _latest_writes(self) -> list[Seen]:
        return [
            s
            for s in self.ledger.results_between(0.0, time.time() + 1)
            if s.result.operation == "token.mint" and s.result.provider
        ]

    def watch_node(self, node_id: str) -> NodeWatch:
        return NodeWatch(self.sandbox, node_id)

    def dispatched_to(self, node_id: str, start: float, end: float) -> list[str]:
        """Tasks the providers started on the node between `start` and `end`."""
        return [
            s.result.task_id
            for s in self.ledger.results_between(start, time.time() + 1)
            if s.result.node == node_id and start <= _dispatched_at(s.result) < end
        ]

    async def routed_to(self, node_id: str, since: float, timeout_s: float) -> float | None:
        """When the first task started on the node after `since` (None: none in time)."""
        deadline = time.time() + timeout_s
        while time.time() < deadline:
            times = [
                _dispatched_at(s.result)
                for s in self.ledger.results_between(since, time.time() + 1)
                if s.result.node == node_id and _dispatched_at(s.result) >= since
            ]
            if times:
                return min(times)
            await asyncio.sleep(0.5)
        return None

    async def _until_whole(self, since: float) -> float | None:
        while time.time() - since < WHOLE_TIMEOUT_S:
            if await self.sandbox.is_whole():
                return time.time() - since
            await asyncio.sleep(0.25)
        return None


def _dispatched_at(result: ResultMessage) -> float:
    return result.finished_at - result.timings.executed_s


class NodeWatch:
    """The manager's view of one node, sampled every 0.25 s in the background."""

    def __init__(self, sandbox: Sandbox, node_id: str) -> None:
        self._sandbox = sandbox
        self._node_id = node_id
        self.seen: list[tuple[float, NodeSnapshot]] = []
        self._task = asyncio.create_task(self._sample())

    async def _sample(self) -> None:
        assert self._sandbox.manager is not None
        while True:
            snapshot = self._sandbox.manager.snapshot()
            for node in snapshot.nodes:
                if node.node_id == self._node_id:
                    self.seen.append((time.time(), node))
            await asyncio.sleep(0.25)

    def stop(self) -> None:
        self._task.cancel()

    def first(self, wanted: Callable[[NodeSnapshot], bool], since: float = 0.0) -> float | None:
        return next((at for at, node in self.seen if at >= since and wanted(node)), None)

    async def until(self, wanted: Callable[[NodeSnapshot], bool], timeout_s: float) -> float:
        """When the node was first seen as `wanted` from now on."""
        since = time.time()
        deadline = since + timeout_s
        while time.time() < deadline:
            found = self.first(wanted, since)
            if found is not None:
                return found
            await asyncio.sleep(0.25)
        raise TimeoutError(f"{self._node_id} not as wanted within {timeout_s:.0f} s")

    def spans(self, wanted: Callable[[NodeSnapshot], bool]) -> list[tuple[float, float]]:
        """Each run of consecutive samples that were `wanted`: (first, last) sample times."""
        runs: list[tuple[float, float]] = []
        start: float | None = None
        last = 0.0
        for at, node in self.seen:
            if wanted(node):
                start = at if start is None else start
                last = at
            elif start is not None:
                runs.append((start, last))
                start = None
        if start is not None:
            runs.append((start, last))
        return runs


def assert_clean(row: Row) -> None:
    """The promises of issue #8 for one scenario."""
    v = row.verdict
    assert v.reads > 0, "the load did not run"
    assert v.writes > 0, "the load did not run"
    assert v.read_failures == 0, f"reads failed: {row.notes}"
    assert row.deferred_failed == 0, "a read answered 202 never succeeded"
    assert v.write_failures == 0, f"writes failed without a retriable error: {row.notes}"
    assert row.lost == 0, "accepted writes lost"
    assert row.twice == 0, "a write executed twice"
    assert row.account_locked == 0, f"user writes lost their unlock: {row.notes}"
    assert row.whole_s is not None, "the stack did not recover"
