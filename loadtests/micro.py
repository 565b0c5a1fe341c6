"""Two micro-benchmarks on a running ethgw stack (`ethgw bench --micro`):

1. Read latency at low load: the same read (the block number) sent one at a time
   straight to a node (JSON-RPC), to a read-service instance (Kafka and a provider,
   no gateway), and through the gateway; alternating blocks so drift hits all alike.
   Then where a read's time goes: the same task put on Kafka from here, timed at each
   hop with the clocks of the processes (one machine, one clock).
2. Sustained mined write transactions per second, against the chain's capacity
   (gas limit / block period / 21,000 gas per transfer): ether transfers sent through
   the gateway by concurrent clients, counted in the blocks sealed meanwhile; then the
   same with transactions signed here and sent straight to a node, which shows what
   the chain takes on this machine without the platform.
"""

from __future__ import annotations

import asyncio
import statistics
import time
from collections.abc import Awaitable, Callable
from dataclasses import dataclass
from typing import Any

import aiohttp
import httpx
from eth_account import Account

from consumer_service import TaskClient
from ethgw_wire.http_api import API_KEY_HEADER
from ethgw_wire.kafka import kafka_producer, publish
from ethgw_wire.messages import Timings
from ethgw_wire.operations import new_task
from ethgw_wire.request_auth import ensure_request_key, signing_auth
from ethgw_wire.settings import ClusterSettings, KafkaSettings, request_key_file
from loadtests.cpu import CPU_KINDS, CpuLedger, ms_per_request
from loadtests.systems import System

TRANSFER_GAS = 21_000
GAS_PRICE_WEI = 2 * 10**9  # above the sealer's minimum tip


@dataclass(frozen=True)
class Latency:
    path: str
    p50_ms: float
    p90_ms: float
    p99_ms: float
    count: int


def _latency(path: str, samples: list[float]) -> Latency:
    cuts = statistics.quantiles(samples, n=100)
    return Latency(path, cuts[49] * 1000, cuts[89] * 1000, cuts[98] * 1000, len(samples))


async def _timed(call: Callable[[], Awaitable[httpx.Response]], count: int) -> list[float]:
    samples = []
    for _ in range(count):
        started = time.perf_counter()
        response = await call()
        samples.append(time.perf_counter() - started)
        if response.status_code != 200:
            raise RuntimeError(f"{response.request.url}: {response.status_code} {response.text}")
    return samples


async def read_latency(
    system: System, rpc_url: str, requests: int, blocks: int = 10
) -> list[Latency]:
    """p50/p90/p99 of one read: direct to the node, via a read instance, via the gateway."""
    read_instance = system.url.rsplit(":", 1)[0] + f":{int(system.url.rsplit(':', 1)[1]) + 100}"
    body = {"jsonrpc": "2.0", "id": 1, "method": "eth_blockNumber", "params": []}
    headers = {API_KEY_HEADER: system.api_key}
    # An instance takes only what the gateway signed: the bench signs as the gateway does,
    # with the system's own request key.
    signed = signing_auth(ensure_request_key(request_key_file(system.state_dir)))
    async with (
        httpx.AsyncClient(timeout=30, trust_env=False, headers=headers) as client,
        httpx.AsyncClient(timeout=30, trust_env=False, auth=signed) as instance,
    ):
        calls: dict[str, Callable[[], Awaitable[httpx.Response]]] = {
            "direct to node-1 (JSON-RPC)": lambda: client.post(rpc_url, json=body),
            "read instance (Kafka, provider)": lambda: instance.get(
                read_instance + "/api/v1/conn/blockNum"
            ),
            "gateway (the full pipeline)": lambda: client.get(system.url + "/api/v1/conn/blockNum"),
        }
        samples: dict[str, list[float]] = {name: [] for name in calls}
        for call in calls.values():
            await _timed(call, 50)  # warm-up: connections, caches
        for _ in range(blocks):
            for name, call in calls.items():
                samples[name] += await _timed(call, max(1, requests // blocks))
    return [_latency(name, s) for name, s in samples.items()]


@dataclass(frozen=True)
class ReadThroughput:
    """Reads answered per second by one path under concurrent clients, and the CPU
    each read cost every kind of process of the system (ms per read)."""

    path: str
    clients: int
    reads: int
    seconds: float
    cpu_ms: dict[str, float]

    @property
    def per_second(self) -> float:
        return self.reads / self.seconds if self.seconds > 0 else 0.0


async def _read_loop(
    session: aiohttp.ClientSession, url: str, body: Any | None, until: float
) -> int:
    """One client: the same read again and again until `until`; the reads answered 200.
    A connection the server closed under load is a read not answered, not the end."""
    done = 0
    while time.monotonic() < until:
        request = session.post(url, json=body) if body is not None else session.get(url)
        try:
            async with request as response:
                await response.read()
                done += response.status == 200
        except aiohttp.ClientError:
            continue
    return done


async def read_throughput(
    system: System, rpc_url: str, clients: int = 64, seconds: float = 10.0
) -> list[ReadThroughput]:
    """The block number read by `clients` concurrent clients for `seconds`, straight to
    one node and through the gateway, each path measured alone, with its CPU cost."""
    body = {"jsonrpc": "2.0", "id": 1, "method": "eth_blockNumber", "params": []}
    paths: dict[str, tuple[str, Any | None]] = {
        "direct to node-1 (JSON-RPC)": (rpc_url, body),
        "gateway (the full pipeline)": (system.url + "/api/v1/conn/blockNum", None),
    }
    headers = {API_KEY_HEADER: system.api_key}
    connector = aiohttp.TCPConnector(limit=clients)
    rows = []
    async with aiohttp.ClientSession(headers=headers, connector=connector) as session:
        for name, (url, payload) in paths.items():
            await _read_loop(session, url, payload, time.monotonic() + 2.0)  # warm-up
            ledger = CpuLedger()
            ledger.start(system.processes())
            started = time.monotonic()
            until = started + seconds
            counts = await asyncio.gather(
                *(_read_loop(session, url, payload, until) for _ in range(clients))
            )
            elapsed = time.monotonic() - started
            ledger.observe(system.processes())
            reads = sum(counts)
            cpu = ms_per_request(ledger.seconds_by_kind(), reads)
            rows.append(ReadThroughput(name, clients, reads, elapsed, cpu))
    return rows


def format_throughput(rows: list[ReadThroughput]) -> str:
    kinds = [kind for kind in (*CPU_KINDS, "total") if any(r.cpu_ms.get(kind) for r in rows)]
    lines = [
        "| path | clients | reads/s | " + " | ".join(f"CPU ms/read: {k}" for k in kinds) + " |",
        "|" + "---|" * (3 + len(kinds)),
    ]
    for row in rows:
        figures = " | ".join(f"{row.cpu_ms.get(kind, 0.0):.2f}" for kind in kinds)
        lines.append(f"| {row.path} | {row.clients} | {row.per_second:.0f} | {figures} |")
    if len(rows) == 2 and rows[0].per_second > 0:
        ratio = rows[1].per_second / rows[0].per_second
        lines.append(f"\nreads/s through the gateway / direct to one node: {ratio:.2f}")
    return "\n".join(lines)


HOPS = (
    "the task on Kafka (produce, acknowledged)",
    "to the provider's start (fetch, round)",
    "execution (the node call and its client)",
    "the result back (produce, fetch)",
    "in all",
)


@dataclass(frozen=True)
class Hop:
    name: str
    p50_ms: float
    mean_ms: float
    p90_ms: float


def hop_seconds(
    enqueued_at: float, acked_at: float, timings: Timings, mirrored_at: float
) -> tuple[float, ...]:
    """One task's time in each of HOPS, from the submitter's clock and the provider's."""
    started = enqueued_at + timings.queued_s
    ended = started + timings.executed_s
    return (
        acked_at - enqueued_at,
        started - acked_at,
        timings.executed_s,
        mirrored_at - ended,
        mirrored_at - enqueued_at,
    )


def _hops(samples: list[tuple[float, ...]]) -> list[Hop]:
    rows = []
    for k, name in enumerate(HOPS):
        values = [sample[k] * 1000 for sample in samples]
        cuts = statistics.quantiles(values, n=10)
        rows.append(Hop(name, statistics.median(values), statistics.fmean(values), cuts[8]))
    return rows


async def read_hops(kafka: KafkaSettings, requests: int, warmup: int = 30) -> list[Hop]:
    """p50/mean/p90 of each hop of a block-number read, one task at a time."""
    samples = []
    async with kafka_producer(kafka) as producer:
        tasks = TaskClient(kafka, producer, history_s=10)
        await tasks.start()
        try:
            for n in range(warmup + requests):
                task = tasks.addressed(new_task("chain.block_number", {}))
                await publish(producer, tasks.topic_for(task), task, key=task.account)
                acked_at = time.time()
                result = await tasks.wait(task.task_id, 30)
                mirrored_at = time.time()
                if result is None:
                    raise RuntimeError(f"task {task.task_id}: no result within 30 s")
                if n >= warmup:
                    samples.append(hop_seconds(task.enqueued_at, acked_at, result.timings,
                                               mirrored_at))  # fmt: skip
        finally:
            await tasks.stop()
    return _hops(samples)


def format_hops(rows: list[Hop]) -> str:
    lines = ["| hop | p50 ms | mean ms | p90 ms |", "|---|---|---|---|"]
    for row in rows:
        lines.append(f"| {row.name} | {row.p50_ms:.2f} | {row.mean_ms:.2f} | {row.p90_ms:.2f} |")
    return "\n".join(lines)


@dataclass(frozen=True)
class WriteRate:
    path: str
    sent: int
    mined: int
    seconds: float
    mined_per_s: float
    capacity_per_s: float


async def _rpc(client: httpx.AsyncClient, url: str, method: str, params: list[Any]) -> Any:
    answer = (await client.post(url, json={"jsonrpc": "2.0", "id": 1, "method": method,
                                           "params": params})).json()  # fmt: skip
    if "error" in answer:
        raise RuntimeError(f"{method}: {answer['error']}")
    return answer["result"]


async def _mined_between(client: httpx.AsyncClient, rpc_url: str, first: int, last: int,
                         senders: set[str]) -> int:  # fmt: skip
    """Transactions of `senders` in blocks first..last."""
    mined = 0
    for number in range(first, last + 1):
        block = await _rpc(client, rpc_url, "eth_getBlockByNumber", [hex(number), True])
        mined += sum(1 for tx in block["transactions"] if tx["from"].lower() in senders)
    return mined


async def _head(client: httpx.AsyncClient, rpc_url: str) -> int:
    return int(await _rpc(client, rpc_url, "eth_blockNumber", []), 16)


async def _accounts(api: httpx.AsyncClient, count: int) -> list[str]:
    password = "micro-bench-pass"

    async def one() -> str:
        created = (await api.post("/admin/new", json={"password": password})).json()
        address = str(created["data"]["address"])
        await api.post("/admin/unlock", json={"address": address, "password": password,
                                              "durationS": 3600})  # fmt: skip
        return address

    return list(await asyncio.gather(*(one() for _ in range(count))))


async def gateway_writes(
    system: System, rpc_url: str, seconds: float, clients: int, capacity: float
) -> WriteRate:
    """Ether transfers through the gateway by `clients` closed-loop clients, one account each."""
    headers = {API_KEY_HEADER: system.api_key}
    async with (
        httpx.AsyncClient(
            base_url=system.url + "/api/v1", timeout=60, headers=headers, trust_env=False
        ) as api,  # fmt: skip
        httpx.AsyncClient(timeout=30, trust_env=False) as node,
    ):
        senders = await _accounts(api, clients)
        sent = 0
        first = await _head(node, rpc_url) + 1
        started = time.monotonic()
        stop = started + seconds

        async def worker(sender: str) -> None:
            nonlocal sent
            while time.monotonic() < stop:
                body = {"from": sender, "to": sender, "value": 1}
                if (await api.post("/tx/send", json=body)).status_code == 200:
                    sent += 1

        await asyncio.gather(*(worker(s) for s in senders))
        elapsed = time.monotonic() - started
        last = await _head(node, rpc_url)
        mined = await _mined_between(node, rpc_url, first, last, {s.lower() for s in senders})
    return WriteRate("gateway (the full pipeline)", sent, mined, elapsed, mined / elapsed, capacity)


async def direct_writes(
    system: System, rpc_url: str, seconds: float, count: int, capacity: float
) -> WriteRate:
    """Transfers signed here (one funded key) and sent straight to the node, as fast as it
    takes them, for `seconds`: the chain's and node's own rate on this machine."""
    key = Account.create()
    headers = {API_KEY_HEADER: system.api_key}
    async with (
        httpx.AsyncClient(
            base_url=system.url + "/api/v1", timeout=60, headers=headers, trust_env=False
        ) as api,  # fmt: skip
        httpx.AsyncClient(timeout=30, trust_env=False) as node,
    ):
        (funder,) = await _accounts(api, 1)
        await api.post("/tx/send", json={"from": funder, "to": key.address,
                                         "value": 5 * 10**17, "waitReceipt": True})  # fmt: skip
        chain_id = int(await _rpc(node, rpc_url, "eth_chainId", []), 16)
        signed = await asyncio.to_thread(_signed_transfers, key.key, chain_id, count)
        first = await _head(node, rpc_url) + 1
        started = time.monotonic()
        sent = 0
        queue = iter(signed)

        async def worker() -> None:
            nonlocal sent
            for raw in queue:
                if time.monotonic() > started + seconds:
                    return
                await _rpc(node, rpc_url, "eth_sendRawTransaction", [raw])
                sent += 1

        await asyncio.gather(*(worker() for _ in range(16)))
        elapsed = time.monotonic() - started
        last = await _head(node, rpc_url)
        mined = await _mined_between(node, rpc_url, first, last, {key.address.lower()})
    return WriteRate("signed here, straight to node-1", sent, mined, elapsed, mined / elapsed,
                     capacity)  # fmt: skip


def _signed_transfers(key: bytes, chain_id: int, count: int) -> list[str]:
    """`count` transfers of 1 wei from `key`, nonces 0.., as raw hex."""
    to = Account.create().address
    raws = []
    for nonce in range(count):
        tx = {"to": to, "value": 1, "gas": TRANSFER_GAS, "gasPrice": GAS_PRICE_WEI,
              "nonce": nonce, "chainId": chain_id}  # fmt: skip
        raws.append(Account.sign_transaction(tx, key).raw_transaction.to_0x_hex())
    return raws


def chain_capacity(settings: ClusterSettings) -> float:
    """Plain transfers per second the chain can hold: gas limit / block period / 21,000."""
    return settings.gas_limit / settings.block_period / TRANSFER_GAS


def format_latency(rows: list[Latency]) -> str:
    direct = rows[0]
    lines = [
        "| path | p50 ms | p90 ms | p99 ms | p50 added ms | requests |",
        "|---|---|---|---|---|---|",
    ]
    for row in rows:
        lines.append(
            f"| {row.path} | {row.p50_ms:.2f} | {row.p90_ms:.2f} | {row.p99_ms:.2f} | "
            f"{row.p50_ms - direct.p50_ms:+.2f} | {row.count} |"
        )
    return "\n".join(lines)


def format_writes(rows: list[WriteRate]) -> str:
    lines = [
        "| path | sent | mined | seconds | mined tx/s | chain capacity tx/s | share |",
        "|---|---|---|---|---|---|---|",
    ]
    for r in rows:
        lines.append(
            f"| {r.path} | {r.sent} | {r.mined} | {r.seconds:.1f} | {r.mined_per_s:.1f} | "
            f"{r.capacity_per_s:.0f} | {r.mined_per_s / r.capacity_per_s:.1%} |"
        )
    return "\n".join(lines)
