"""eth_subscribe over WebSocket through the real gateway, fed by the chain feed on the
session cluster: web3.py unchanged, logs filters, the caller's own pending transactions,
and a feed that loses its node."""

from __future__ import annotations

import asyncio
import contextlib
import itertools
import json
import uuid
from collections.abc import AsyncIterator
from typing import Any

import httpx
import pytest
import pytest_asyncio
from eth_account import Account
from web3 import AsyncWeb3, WebSocketProvider
from web3.middleware import ExtraDataToPOAMiddleware
from websockets.asyncio.client import ClientConnection, connect
from websockets.exceptions import ConnectionClosed, InvalidStatus

from ethgw_wire.kafka import kafka_producer
from ethgw_wire.platform_record import PlatformRecord
from ethgw_wire.settings import KafkaSettings
from gateway.keys import revoke_keys
from geth_cluster.chain_feed import ChainFeed
from geth_cluster.cluster import GethCluster
from geth_cluster.config import ManagerSettings
from geth_cluster.manager import ClusterManager, open_chain_feed
from tests.pipeline_fixtures import ServerProcess, Stack

pytestmark = pytest.mark.slow

MINT_TOPIC = "0x" + AsyncWeb3.keccak(text="Mint(address,uint256)").hex().removeprefix("0x")
WAIT_S = 90.0  # blocks come every second; the shared machine can be slow


@pytest_asyncio.fixture(scope="module", loop_scope="session")
async def chain_feed(geth_cluster: GethCluster, stack: Stack) -> AsyncIterator[ChainFeed]:
    """The chain feed over a manager of the session cluster (which publishes no node
    states and heals nothing), on the default chain-heads topic the gateway reads."""
    settings = ManagerSettings(
        publish=False,
        recycle=False,
        heal=False,
        sample_interval_s=0.5,
        rpc_timeout_s=0.5,
        chain_feed_rest_s=3.0,
    )
    kafka = KafkaSettings()
    async with contextlib.AsyncExitStack() as stack_of_parts:
        manager = await stack_of_parts.enter_async_context(ClusterManager(geth_cluster, settings))
        producer = await stack_of_parts.enter_async_context(
            kafka_producer(kafka, enable_idempotence=False)
        )
        feed = await open_chain_feed(manager, kafka, producer, stack_of_parts)
        running = await stack_of_parts.enter_async_context(feed)
        await caught_up(running, geth_cluster.spec("node-1").rpc_url)
        yield running


async def caught_up(feed: ChainFeed, rpc_url: str) -> None:
    """Until the feed has published the head: an earlier stack's feed may have left the
    topic hundreds of blocks behind, and the feed fills that gap first."""
    async with httpx.AsyncClient(timeout=5.0, trust_env=False) as client, asyncio.timeout(300):
        while True:
            answer = await client.post(
                rpc_url, json={"jsonrpc": "2.0", "id": 1, "method": "eth_blockNumber"}
            )
            head = int(answer.json()["result"], 16)
            if feed.follower.last_number is not None and feed.follower.last_number >= head - 1:
                return
            await asyncio.sleep(0.5)


def ws_url(stack: Stack, query: str = "") -> str:
    return stack.gateway.url.replace("http://", "ws://") + "/rpc" + query


@contextlib.asynccontextmanager
async def socket(stack: Stack, key: str) -> AsyncIterator[ClientConnection]:
    async with connect(ws_url(stack), additional_headers={"X-API-Key": key}) as ws:
        yield ws


async def call(ws: ClientConnection, method: str, params: list[Any], call_id: int = 1) -> Any:
    """Send one call; return its answer (notifications met meanwhile are not expected)."""
    await ws.send(json.dumps({"jsonrpc": "2.0", "id": call_id, "method": method, "params": params}))
    async with asyncio.timeout(WAIT_S):
        while True:
            message = json.loads(await ws.recv())
            if message.get("id") == call_id:
                return message


async def notifications(ws: ClientConnection, count: int, timeout_s: float = WAIT_S) -> list[Any]:
    results: list[Any] = []
    async with asyncio.timeout(timeout_s):
        while len(results) < count:
            message = json.loads(await ws.recv())
            assert message["method"] == "eth_subscription", message
            results.append(message["params"]["result"])
    return results


async def nothing_within(ws: ClientConnection, seconds: float) -> bool:
    try:
        async with asyncio.timeout(seconds):
            await ws.recv()
    except TimeoutError:
        return True
    return False


def consecutive(numbers: list[int]) -> bool:
    return numbers == list(range(numbers[0], numbers[0] + len(numbers)))


async def test_web3_websocket_provider_gets_consecutive_new_heads(
    stack: Stack, chain_feed: ChainFeed
) -> None:
    """web3.py's WebSocketProvider, unchanged, subscribes newHeads and gets consecutive
    block numbers with their hashes (with web3's Clique extraData middleware, as against
    Geth itself on this chain)."""
    provider = WebSocketProvider(
        ws_url(stack), websocket_kwargs={"extra_headers": {"X-API-Key": stack.user_key}}
    )
    numbers: list[int] = []
    async with AsyncWeb3(provider) as w3:
        w3.middleware_onion.inject(ExtraDataToPOAMiddleware, layer=0)
        subscription = await w3.eth.subscribe("newHeads")
        height = await w3.eth.block_number  # other calls share the socket
        async with asyncio.timeout(WAIT_S):
            async for message in w3.socket.process_subscriptions():
                assert message["subscription"] == subscription
                numbers.append(message["result"]["number"])
                assert len(message["result"]["hash"]) == 32
                if len(numbers) == 4:
                    break
        assert await w3.eth.unsubscribe(subscription)
    assert consecutive(numbers)
    assert numbers[0] >= height - 1


async def test_key_as_query_parameter(stack: Stack, chain_feed: ChainFeed) -> None:
    """A client that cannot set headers passes the key as ?key= and is served."""
    async with connect(ws_url(stack, f"?key={stack.user_key}")) as ws:
        answer = await call(ws, "eth_blockNumber", [])
    assert int(answer["result"], 16) > 0


@pytest.mark.parametrize("query", ["", "?key=ethgw_not_a_key"])
async def test_a_socket_without_a_valid_key_is_refused(stack: Stack, query: str) -> None:
    """The upgrade without a key, or with an unknown one, is refused (HTTP 403)."""
    with pytest.raises(InvalidStatus) as refused:
        async with connect(ws_url(stack, query)):
            pass
    assert refused.value.response.status_code == 403


async def test_logs_filter_gets_its_event_and_not_others(
    stack: Stack, chain_feed: ChainFeed, platform: PlatformRecord
) -> None:
    """A logs subscription gets the Mint log its filter names, and one filtering another
    recipient gets nothing."""
    recipient, other = "0x" + "5a" * 20, "0x" + "5b" * 20

    def topic_of(address: str) -> str:
        return "0x" + address.removeprefix("0x").rjust(64, "0")

    async with socket(stack, stack.user_key) as mine, socket(stack, stack.user_key) as theirs:
        wanted = {"address": platform.token_address, "topics": [MINT_TOPIC, topic_of(recipient)]}
        unwanted = {"address": platform.token_address, "topics": [MINT_TOPIC, topic_of(other)]}
        assert "result" in await call(mine, "eth_subscribe", ["logs", wanted])
        assert "result" in await call(theirs, "eth_subscribe", ["logs", unwanted])
        async with httpx.AsyncClient(
            base_url=stack.api, timeout=60, headers={"X-API-Key": stack.admin_key}
        ) as admin:
            minted = await admin.post(
                "/token/add", json={"address": recipient, "value": 7, "waitReceipt": True}
            )
        assert minted.status_code == 200, minted.text
        [log] = await notifications(mine, 1)
        assert log["transactionHash"] == minted.json()["data"]["tx_hash"]
        assert log["address"].lower() == platform.token_address.lower()
        assert await nothing_within(theirs, 3.0)


async def test_pending_transactions_are_the_callers_own(stack: Stack) -> None:
    """newPendingTransactions shows the hash of the caller's own write, not another key's."""
    async with socket(stack, stack.admin_key) as mine, socket(stack, stack.user_key) as theirs:
        assert "result" in await call(mine, "eth_subscribe", ["newPendingTransactions"])
        assert "result" in await call(theirs, "eth_subscribe", ["newPendingTransactions"])
        async with httpx.AsyncClient(
            base_url=stack.api, timeout=60, headers={"X-API-Key": stack.admin_key}
        ) as admin:
            sent = await admin.post("/token/add", json={"address": "0x" + "5c" * 20, "value": 1})
        assert sent.status_code == 200, sent.text
        assert await notifications(mine, 1) == [sent.json()["data"]["tx_hash"]]
        assert await nothing_within(theirs, 3.0)


async def test_a_raw_transaction_sent_on_the_socket_is_announced_to_its_key(
    stack: Stack, geth_cluster: GethCluster
) -> None:
    """eth_sendRawTransaction on the socket goes through the pipeline like POST /rpc, and
    the key's newPendingTransactions subscription gets the hash it answered."""
    faucet = geth_cluster.accounts.faucet
    async with socket(stack, stack.admin_key) as ws:
        subscribed = await call(ws, "eth_subscribe", ["newPendingTransactions"])
        nonce = await call(ws, "eth_getTransactionCount", [faucet.address, "pending"], 2)
        chain_id = await call(ws, "eth_chainId", [], 3)
        signed = Account.sign_transaction(
            {
                "to": "0x" + "15" * 20,  # digits only: no checksum case
                "value": 1,
                "gas": 21000,
                "gasPrice": 2 * 10**9,
                "nonce": int(nonce["result"], 16),
                "chainId": int(chain_id["result"], 16),
            },
            faucet.private_key(),
        )
        raw = "0x" + signed.raw_transaction.hex().removeprefix("0x")
        await ws.send(
            json.dumps(
                {"jsonrpc": "2.0", "id": 4, "method": "eth_sendRawTransaction", "params": [raw]}
            )
        )
        messages: list[dict[str, Any]] = []
        async with asyncio.timeout(WAIT_S):
            while len(messages) < 2:
                messages.append(json.loads(await ws.recv()))
    [answer] = [m for m in messages if m.get("id") == 4]
    [notification] = [m for m in messages if m.get("method") == "eth_subscription"]
    assert notification["params"]["subscription"] == subscribed["result"]
    assert notification["params"]["result"] == answer["result"]


@pytest.mark.parametrize(
    ("params", "named"),
    [
        ([], "params[0]"),
        (["newBlocks"], "params[0]: unknown subscription kind"),
        (["logs", {"address": "0x12"}], "params[1].address"),
        (["logs", {"topics": [None, "nope"]}], "params[1].topics[1]"),
        (["newHeads", {"x": 1}], "params[1]"),
        (["newPendingTransactions", True], "params[1]"),
    ],
)
async def test_hostile_subscribe_answers_an_error_naming_the_field(
    stack: Stack, params: list[Any], named: str
) -> None:
    """A malformed eth_subscribe answers -32602 naming the parameter, and the socket goes on."""
    async with socket(stack, stack.user_key) as ws:
        answer = await call(ws, "eth_subscribe", params)
        assert answer["error"]["code"] == -32602
        assert named in answer["error"]["message"]
        assert "result" in await call(ws, "eth_blockNumber", [], call_id=2)


async def test_eth_subscribe_over_http_says_it_needs_a_websocket(stack: Stack) -> None:
    """POST /rpc eth_subscribe is refused with a message pointing to the WebSocket."""
    async with httpx.AsyncClient(headers={"X-API-Key": stack.user_key}) as client:
        answer = await client.post(
            f"{stack.gateway.url}/rpc",
            json={"jsonrpc": "2.0", "id": 1, "method": "eth_subscribe", "params": ["newHeads"]},
        )
    assert answer.json()["error"]["code"] == -32601
    assert "WebSocket" in answer.json()["error"]["message"]


async def test_losing_the_feeds_node_makes_no_gap_and_no_repeat(
    stack: Stack, chain_feed: ChainFeed, geth_cluster: GethCluster
) -> None:
    """Stopping the node the feed reads from: another node takes over and the subscription's
    block numbers go on without a gap or a repeat."""
    async with socket(stack, stack.user_key) as ws:
        assert "result" in await call(ws, "eth_subscribe", ["newHeads"])
        headers = await notifications(ws, 2)
        source = chain_feed.follower.source
        assert source is not None
        await geth_cluster.stop_node(source)
        try:
            headers += await notifications(ws, 6)
            assert chain_feed.follower.source not in (None, source)
        finally:
            await geth_cluster.start_node(source)
    numbers = [int(h["number"], 16) for h in headers]
    assert consecutive(numbers), numbers
    assert all(h["parentHash"] == p["hash"] for p, h in itertools.pairwise(headers))


async def read_until_closed(ws: ClientConnection) -> None:
    async with asyncio.timeout(WAIT_S):
        while True:
            await ws.recv()


async def test_revoking_a_key_closes_its_open_socket_and_no_other(stack: Stack) -> None:
    """`keys revoke` closes the key's open WebSocket with 1008 and a reason; another key's
    socket goes on answering."""
    name = f"ws-revoked-{uuid.uuid4().hex[:8]}"
    key = await stack.new_user_key(name)
    async with socket(stack, key) as revoked_ws, socket(stack, stack.user_key) as kept_ws:
        assert (await call(revoked_ws, "eth_chainId", []))["result"]
        revoke_keys(stack.state_dir, name)
        with pytest.raises(ConnectionClosed) as closed:
            await read_until_closed(revoked_ws)
        assert closed.value.rcvd is not None
        assert (closed.value.rcvd.code, closed.value.rcvd.reason) == (
            1008,
            "the API key was revoked",
        )
        assert (await call(kept_ws, "eth_chainId", [], call_id=2))["result"]


@pytest_asyncio.fixture(scope="module", loop_scope="session")
async def tight_gateway(stack: Stack, provider_log_dir: Any) -> AsyncIterator[ServerProcess]:
    """A gateway with the session's keys whose sockets may hold one unsent message."""
    process = ServerProcess(
        "gateway",
        {"ETHGW_GATEWAY_STATE_DIR": str(stack.state_dir), "ETHGW_GATEWAY_WS_OUTBOX_MESSAGES": "1"},
        provider_log_dir,
        "tight-gateway",
        "ETHGW_GATEWAY_PORT",
    )
    process.start()
    try:
        await process.wait_ready(path="/healthz")
        yield process
    finally:
        process.stop()


async def flooded_until_closed(url: str, key: str) -> ConnectionClosed:
    """Send 300 calls at once without reading, then read until the gateway closes."""
    unsubscribe = {"jsonrpc": "2.0", "method": "eth_unsubscribe", "params": ["0x0"]}
    try:
        async with connect(url, additional_headers={"X-API-Key": key}) as ws:
            for n in range(300):
                await ws.send(json.dumps({**unsubscribe, "id": n}))
            async with asyncio.timeout(WAIT_S):
                while True:
                    await ws.recv()
    except ConnectionClosed as closed:
        return closed
    raise AssertionError("the gateway never closed the socket")


async def test_a_client_that_does_not_keep_up_is_closed_1008(
    stack: Stack, tight_gateway: ServerProcess
) -> None:
    """A client whose answers pile up past its socket's outbox is closed with code 1008, and
    the gateway counts it."""
    url = tight_gateway.url.replace("http://", "ws://") + "/rpc"
    closed = await flooded_until_closed(url, stack.user_key)
    assert closed.rcvd is not None
    assert closed.rcvd.code == 1008
    async with httpx.AsyncClient() as client:
        metrics = (await client.get(f"{tight_gateway.url}/metrics")).text
    assert "ethgw_gateway_slow_clients_dropped_total 1.0" in metrics
