"""Read your writes and one head per batch, on the real stack with a node that lags.

The lagging node is a node of this chain cut off from its peers (it stays at genesis), put
in zone II so the scheduler sends it the reads, while its peers in zone I take the writes.
The node reports the test publishes give node-1 and node-2 the head they had when the
module started, never updated, as a sampled report is always behind: what the provider
knows of their later blocks it must learn from the nodes' own answers.
"""

from __future__ import annotations

import asyncio
import time
from collections.abc import AsyncIterator
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import httpx
import pytest
import pytest_asyncio

from consumer_service.task_client import TaskClient
from devstack.kafka_broker import KafkaBroker
from ethgw_wire.http_api import MIN_BLOCK_HEADER
from ethgw_wire.node_reports import NodeReport
from ethgw_wire.platform_record import PlatformRecord
from geth_cluster.cluster import GethCluster
from geth_cluster.node_rpc import block_number
from tests.pipeline.test_scheduling import ZONE_I, ZONE_II, behind_node
from tests.pipeline_fixtures import (
    IsolatedPipeline,
    ServerProcess,
    SteeredStates,
    idle_reports,
    isolated_provider,
    start_front_door,
    stop_all,
)

pytestmark = pytest.mark.slow

__all__ = ["behind_node"]  # the module fixture this module uses, from test_scheduling

PASSWORD = "a long enough password"
# The lagging node stays at genesis: every iteration meets the same lag, so a few suffice.
ITERATIONS = 4
MAX_AHEAD = 100_000
BATCHES = 12


@dataclass(frozen=True)
class Chain:
    """The cluster, the lagging node's URL and the head node-1 and node-2 are reported at."""

    cluster: GethCluster
    behind_url: str
    reported_head: int

    def reports(
        self,
        node2: tuple[float, float] = ZONE_I,
        node1: tuple[float, float] = ZONE_I,
        node0: tuple[float, float] = ZONE_II,
    ) -> list[NodeReport]:
        """By default node-1 (and node-2) in zone I at the module's first head; node-0, at
        genesis, in zone II with its true block."""
        base = {r.node_id: r for r in idle_reports(self.cluster)}
        stale = {"block": self.reported_head, "lag": 0}
        behind = {"node_id": "node-0", "rpc_url": self.behind_url, "block": 0, "lag": 0}
        return [
            base["node-1"].model_copy(update={"memory": node1[0], "cpu": node1[1], **stale}),
            base["node-2"].model_copy(update={"memory": node2[0], "cpu": node2[1], **stale}),
            base["node-1"].model_copy(update={"memory": node0[0], "cpu": node0[1], **behind}),
        ]


@dataclass(frozen=True)
class Lagging:
    chain: Chain
    pipeline: IsolatedPipeline
    client: TaskClient
    steered: SteeredStates
    gateway_url: str
    admin_key: str

    def http(self) -> httpx.AsyncClient:
        return httpx.AsyncClient(
            base_url=self.gateway_url, timeout=90.0, headers={"X-API-Key": self.admin_key}
        )


@pytest_asyncio.fixture(scope="module", loop_scope="session")
async def lagging(
    kafka_broker: KafkaBroker,
    geth_cluster: GethCluster,
    platform_file: Path,
    provider_log_dir: Path,
    behind_node: str,
    tmp_path_factory: pytest.TempPathFactory,
) -> AsyncIterator[Lagging]:
    """A provider, a gateway and a read and a write instance; node-0 lags and takes the reads."""
    from gateway.keys import create_key

    async with httpx.AsyncClient() as http:
        head = await block_number(http, geth_cluster.spec("node-1").rpc_url)
    chain = Chain(geth_cluster, behind_node, head)
    state = tmp_path_factory.mktemp("ryw-state")
    admin_key = create_key(state, "ryw-admin", "admin")
    async with isolated_provider(
        "ryw",
        geth_cluster,
        platform_file,
        provider_log_dir,
        chain.reports(),
        # The reports stay at the module's first head on purpose: a lowest block is refused
        # only past this many blocks beyond it.
        ETHGW_READS_MIN_BLOCK_MAX_AHEAD=str(MAX_AHEAD),
    ) as (pipeline, client, steered):
        processes: list[ServerProcess] = []
        try:
            processes = await start_front_door(pipeline, state, provider_log_dir, "ryw")
            yield Lagging(chain, pipeline, client, steered, processes[0].url, admin_key)
        finally:
            stop_all(processes)


async def _ok(response: httpx.Response) -> Any:
    assert response.status_code == 200, response.text
    return response.json()["data"]


async def _mint(http: httpx.AsyncClient, platform: PlatformRecord) -> dict[str, Any]:
    body = {"address": platform.admin_address, "value": 1, "waitReceipt": True}
    data: dict[str, Any] = await _ok(await http.post("/api/v1/token/add", json=body))
    assert data["status"] == "mined"
    return data


async def test_reads_go_to_the_lagging_node(lagging: Lagging) -> None:
    """The premise: a read naming nothing runs on node-0, which answers genesis."""
    async with lagging.http() as http:
        for _ in range(3):
            data = await _ok(await http.get("/api/v1/conn/blockNum"))
            assert data["block_number"] == 0


async def test_a_write_then_its_reads_never_answer_not_found(
    lagging: Lagging, platform: PlatformRecord
) -> None:
    """After a write answered as mined, its receipt, its transaction and its block (by
    number and by hash) are found at once, every time, though the reads' node lags."""
    async with lagging.http() as http:
        for _ in range(ITERATIONS):
            mined = await _mint(http, platform)
            tx_hash, number = mined["tx_hash"], mined["block_number"]
            receipt = await _ok(await http.get(f"/api/v1/transactions/{tx_hash}/receipt"))
            transaction = await _ok(await http.get(f"/api/v1/transactions/{tx_hash}"))
            block = await _ok(await http.get(f"/api/v1/blocks/{number}"))
            by_hash = await _ok(await http.get(f"/api/v1/blocks/{receipt['blockHash']}"))
            assert int(receipt["blockNumber"], 16) == number
            assert int(transaction["blockNumber"], 16) == number
            assert tx_hash in block["transactions"]
            assert by_hash["hash"] == receipt["blockHash"]


async def test_json_rpc_reads_of_a_write_are_found(
    lagging: Lagging, platform: PlatformRecord
) -> None:
    """The same through /rpc: eth_getTransactionReceipt of a mined write is never null."""
    async with lagging.http() as http:
        for _ in range(ITERATIONS // 2):
            tx_hash = (await _mint(http, platform))["tx_hash"]
            call = {
                "jsonrpc": "2.0",
                "id": 1,
                "method": "eth_getTransactionReceipt",
                "params": [tx_hash],
            }
            answer = (await http.post("/rpc", json=call)).json()
            assert answer["result"] is not None, answer
            assert answer["result"]["transactionHash"] == tx_hash


async def test_the_min_block_header_sends_a_read_to_a_node_that_has_the_block(
    lagging: Lagging, platform: PlatformRecord
) -> None:
    """A client passing the block its write was mined in reads at that block or later."""
    async with lagging.http() as http:
        number = (await _mint(http, platform))["block_number"]
        headers = {MIN_BLOCK_HEADER: str(number)}
        data = await _ok(await http.get("/api/v1/conn/blockNum", headers=headers))
        hex_headers = {MIN_BLOCK_HEADER: hex(number)}
        again = await _ok(await http.get("/api/v1/conn/blockNum", headers=hex_headers))
    assert data["block_number"] >= number
    assert again["block_number"] >= number


async def test_a_read_waits_for_a_block_no_node_has_yet(lagging: Lagging) -> None:
    """A lowest block two past every head is waited for (Clique seals one a second)."""
    async with httpx.AsyncClient() as plain:
        head = await block_number(plain, lagging.chain.cluster.spec("node-1").rpc_url)
    started = time.monotonic()
    async with lagging.http() as http:
        headers = {MIN_BLOCK_HEADER: str(head + 2)}
        data = await _ok(await http.get("/api/v1/conn/blockNum", headers=headers))
    assert data["block_number"] >= head + 2
    assert time.monotonic() - started < 30


async def test_a_min_block_that_is_no_number_is_refused(lagging: Lagging) -> None:
    """X-Ethgw-Min-Block: soon is a 422 naming the header; on /rpc an error naming it."""
    async with lagging.http() as http:
        answer = await http.get("/api/v1/conn/blockNum", headers={MIN_BLOCK_HEADER: "soon"})
        call = {"jsonrpc": "2.0", "id": 1, "method": "eth_blockNumber", "params": []}
        rpc = (await http.post("/rpc", json=call, headers={MIN_BLOCK_HEADER: "-1"})).json()
    assert answer.status_code == 422
    assert answer.json()["error"]["field"] == MIN_BLOCK_HEADER
    assert MIN_BLOCK_HEADER in rpc["error"]["message"]


async def test_a_min_block_far_past_the_head_is_refused_at_once(lagging: Lagging) -> None:
    """A lowest block no node can reach within the wait is a 422 naming the header, at once
    (it would hold a provider's slot for nothing)."""
    far = lagging.chain.reported_head + MAX_AHEAD + 1
    started = time.monotonic()
    async with lagging.http() as http:
        answer = await http.get("/api/v1/conn/blockNum", headers={MIN_BLOCK_HEADER: str(far)})
    assert answer.status_code == 422
    assert answer.json()["error"]["field"] == MIN_BLOCK_HEADER
    assert "past the chain's head" in answer.json()["error"]["reason"]
    assert time.monotonic() - started < 5


async def test_a_batch_reads_latest_at_one_block(lagging: Lagging) -> None:
    """With reads spread over a lagging node and one at the head, every call of a batch that
    reads "latest" answers for the same block."""
    await lagging.steered.apply(lagging.chain.reports(node2=ZONE_II))
    admin = "0x" + "00" * 19 + "01"
    batch = [
        {"jsonrpc": "2.0", "id": 1, "method": "eth_blockNumber", "params": []},
        {"jsonrpc": "2.0", "id": 2, "method": "eth_getBlockByNumber", "params": ["latest", False]},
        {"jsonrpc": "2.0", "id": 3, "method": "eth_getBalance", "params": [admin, "latest"]},
        {"jsonrpc": "2.0", "id": 4, "method": "eth_getBlockByNumber", "params": ["latest", False]},
    ]
    try:
        async with lagging.http() as http:
            for _ in range(BATCHES):
                answers = {a["id"]: a for a in (await http.post("/rpc", json=batch)).json()}
                assert all("result" in a for a in answers.values()), answers
                head = answers[1]["result"]
                assert answers[2]["result"]["number"] == head
                assert answers[4]["result"]["number"] == head
                await asyncio.sleep(0.3)
    finally:
        await lagging.steered.apply(lagging.chain.reports())


async def test_a_new_accounts_first_write_on_a_node_without_its_funding_is_mined(
    lagging: Lagging,
) -> None:
    """A new account's first write sent to node-0, which lacks the block of its funding (it
    answers "insufficient funds"), runs again on a node at the head and is mined."""
    async with lagging.http() as http:
        made = await _ok(await http.post("/api/v1/accounts", json={"password": PASSWORD}))
        address = made["address"]
        unlock = {"password": PASSWORD}
        await _ok(await http.post(f"/api/v1/accounts/{address}/unlock", json=unlock))
        chain = lagging.chain
        await lagging.steered.apply(chain.reports(node2=ZONE_II, node1=ZONE_II, node0=ZONE_I))
        try:
            send = {"from": address, "to": address, "value": 1, "waitReceipt": True}
            sent = await _ok(await http.post("/api/v1/tx/send", json=send))
        finally:
            await lagging.steered.apply(chain.reports())
    assert sent["status"] == "mined"


async def test_immutable_answers_are_cached_and_counted(
    lagging: Lagging, platform: PlatformRecord
) -> None:
    """A block read twice at the safe depth is answered from the cache the second time, and
    the provider's metrics count the hit."""
    async with lagging.http() as http:
        old = max(1, lagging.chain.reported_head - 10)
        for _ in range(2):
            await _ok(await http.get(f"/api/v1/blocks/{old}"))
        port = lagging.pipeline.providers[0].port
        text = (await http.get(f"http://127.0.0.1:{port}/metrics")).text
    assert 'ethgw_provider_cache_requests_total{cache="block",result="hit"}' in text
