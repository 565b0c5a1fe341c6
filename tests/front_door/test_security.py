"""Security through the real stack: secrets stay out of every log, keystores are scrypt,
Geth's RPC is on loopback only, management namespaces are unreachable, unlocks expire."""

from __future__ import annotations

import asyncio
import json
import time
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import httpx
import psutil
import pytest
import pytest_asyncio
from aiokafka import AIOKafkaConsumer, TopicPartition
from eth_account import Account

from devstack.kafka_broker import KafkaBroker
from ethgw_wire.kafka import client_options
from ethgw_wire.settings import KafkaSettings
from geth_cluster.cluster import GethCluster
from geth_cluster.errors import RpcError
from geth_cluster.node_rpc import rpc_call
from tests.pipeline_fixtures import TEST_SCRYPT_N, Stack

pytestmark = pytest.mark.slow

# Distinctive, so a hit in a log can only be a leak.
PUBLISHER_PASSWORD = "pw-publisher-7Qk2xV9m"
BUYER_PASSWORD = "pw-buyer-Lr4Zt8Wn"
LOOPBACK = {"127.0.0.1", "::1"}
DENIED_CALLS = ["personal_unlockAccount", "admin_nodeInfo", "miner_stop", "debug_setHead"]


@dataclass(frozen=True)
class Flow:
    """What the front-door flow made: the accounts, their keystores and private keys."""

    addresses: list[str]
    keystores: dict[str, dict[str, Any]]
    private_keys: list[bytes]


async def ok(response: httpx.Response) -> Any:
    assert response.status_code == 200, response.text
    return response.json()["data"]


async def keystores_on_kafka(settings: KafkaSettings, addresses: list[str]) -> dict[str, Any]:
    """The keystores of `addresses` from the compacted accounts topic, read from its start."""
    consumer = AIOKafkaConsumer(**client_options(settings))
    await consumer.start()
    found: dict[str, Any] = {}
    try:
        partitions = [
            TopicPartition(settings.topic_accounts, p)
            for p in consumer.partitions_for_topic(settings.topic_accounts) or [0]
        ]
        consumer.assign(partitions)
        await consumer.seek_to_beginning(*partitions)
        end = await consumer.end_offsets(partitions)
        async with asyncio.timeout(60):
            while [tp for tp in partitions if await consumer.position(tp) < end[tp]]:
                for records in (await consumer.getmany(timeout_ms=500)).values():
                    for record in records:
                        if record.value is not None and record.key.decode() in addresses:
                            found[record.key.decode()] = json.loads(record.value)["keystore"]
    finally:
        await consumer.stop()
    return found


@pytest_asyncio.fixture(scope="module", loop_scope="session")
async def flow(stack: Stack) -> Flow:
    """Two accounts created and unlocked with known passwords; a mint and a transfer."""
    async with httpx.AsyncClient(
        base_url=stack.api, timeout=60, headers={"X-API-Key": stack.admin_key}
    ) as admin:
        addresses = []
        for password in (PUBLISHER_PASSWORD, BUYER_PASSWORD):
            made = await ok(await admin.post("/admin/new", json={"password": password}))
            address = made["address"]
            await ok(
                await admin.post("/admin/unlock", json={"address": address, "password": password})
            )
            addresses.append(address)
        await ok(
            await admin.post(
                "/token/add", json={"address": addresses[0], "value": 50, "waitReceipt": True}
            )
        )
        await ok(
            await admin.post(
                "/token/transfer",
                json={"from": addresses[0], "to": addresses[1], "value": 5, "waitReceipt": True},
            )
        )
    keystores = await keystores_on_kafka(KafkaSettings(), addresses)
    keys = [
        bytes(Account.decrypt(keystores[a], p))
        for a, p in zip(addresses, (PUBLISHER_PASSWORD, BUYER_PASSWORD), strict=True)
    ]
    return Flow(addresses, keystores, keys)


def stack_logs(cluster: GethCluster, broker: KafkaBroker, service_logs: Path) -> list[Path]:
    """Every log the stack wrote: services, providers, manager, each geth node, the broker."""
    logs = sorted(service_logs.glob("*.log"))
    logs += [spec.datadir / "geth.log" for spec in cluster.specs]
    logs.append(broker.log_file)
    return [path for path in logs if path.is_file()]


def secret_forms(secret: bytes | str) -> list[str]:
    """How a secret could appear in text: as is, or a key as hex with and without 0x."""
    if isinstance(secret, str):
        return [secret]
    return [secret.hex(), "0x" + secret.hex()]


async def test_no_log_holds_a_password_a_private_key_or_an_api_key(
    flow: Flow,
    stack: Stack,
    geth_cluster: GethCluster,
    kafka_broker: KafkaBroker,
    provider_log_dir: Path,
) -> None:
    """After the flow, no log file of the stack contains any of the known secrets."""
    chain = [geth_cluster.accounts.sealer, geth_cluster.accounts.faucet]
    secrets: list[bytes | str] = [
        PUBLISHER_PASSWORD,
        BUYER_PASSWORD,
        stack.admin_key,
        stack.user_key,
        *flow.private_keys,
        *(bytes(account.private_key()) for account in chain),
        *(account.password_path.read_text().strip() for account in chain),
    ]
    logs = stack_logs(geth_cluster, kafka_broker, provider_log_dir)
    leaks = [
        (path.name, form[:6] + "...")
        for path in logs
        for text in [path.read_text(errors="replace")]
        for secret in secrets
        for form in secret_forms(secret)
        if form in text
    ]
    assert len(logs) >= 10  # gateway, 4 instances, provider, manager, 3 geth nodes, broker
    assert leaks == []


async def test_created_accounts_keystores_are_scrypt(flow: Flow) -> None:
    """The keystore of an account made through the gateway is a V3 scrypt keystore at the
    provider's ETHGW_KEYSTORE_SCRYPT_N (the tests' low cost, set by provider_env)."""
    for keystore in flow.keystores.values():
        assert keystore["version"] == 3
        assert keystore["crypto"]["kdf"] == "scrypt"
        assert keystore["crypto"]["kdfparams"]["n"] == TEST_SCRYPT_N


def test_chain_account_keystores_are_scrypt_at_the_standard_cost(
    geth_cluster: GethCluster,
) -> None:
    """The sealer's and the faucet's keystore files are scrypt V3 keystores at N=2^18 (the
    session cluster is made with the default settings)."""
    for account in (geth_cluster.accounts.sealer, geth_cluster.accounts.faucet):
        keystore = json.loads(account.keystore_path.read_text())
        assert keystore["crypto"]["kdf"] == "scrypt"
        assert keystore["crypto"]["kdfparams"]["n"] == 2**18


def test_geth_rpc_listens_on_loopback_only(geth_cluster: GethCluster) -> None:
    """Every geth process's HTTP RPC and auth RPC sockets listen on loopback only (the
    sealer has no HTTP RPC)."""
    checked = 0
    for spec in geth_cluster.specs:
        pid = geth_cluster.runtime.pid(spec)
        assert pid is not None, spec.name
        for connection in psutil.Process(pid).net_connections(kind="tcp"):
            if connection.status != psutil.CONN_LISTEN:
                continue
            if connection.laddr.port in (spec.rpc_port, spec.authrpc_port):
                assert connection.laddr.ip in LOOPBACK, (spec.name, connection.laddr)
                checked += 1
    assert checked >= 2 * len(geth_cluster.specs) - 1


async def test_the_sealers_unlocked_account_cannot_send_over_http(
    geth_cluster: GethCluster,
) -> None:
    """eth_sendTransaction from the sealer's account, on every TCP port any geth of the
    cluster listens on, gets no transaction hash; its account is unlocked, over its IPC
    socket only, in a folder of its user's (0700)."""
    sealer = geth_cluster.spec("sealer")
    address = geth_cluster.accounts.sealer.address
    send = {"jsonrpc": "2.0", "id": 1, "method": "eth_sendTransaction"}
    send["params"] = [{"from": address, "to": address, "value": "0x1"}]
    listening: list[str] = []
    for spec in geth_cluster.specs:
        pid = geth_cluster.runtime.pid(spec)
        assert pid is not None, spec.name
        for connection in psutil.Process(pid).net_connections(kind="tcp"):
            if connection.status == psutil.CONN_LISTEN:
                listening.append(f"{spec.name} http://127.0.0.1:{connection.laddr.port}")
    async with httpx.AsyncClient(timeout=5, trust_env=False) as client:

        async def post(where: str) -> str:
            try:
                return (await client.post(where.split()[1], json=send)).text
            except httpx.HTTPError as error:
                return repr(error)

        # At once: a P2P port takes the request and never answers, so each waits the timeout.
        answers = dict(zip(listening, await asyncio.gather(*map(post, listening)), strict=True))
        sent = {where: answer for where, answer in answers.items() if '"result"' in answer}
        assert sent == {}
        assert len(answers) >= 2 * len(geth_cluster.specs)  # p2p and auth RPC at least
        accounts = await rpc_call(client, sealer.rpc_url, "eth_accounts")
        assert address.lower() in [a.lower() for a in accounts]
    assert sealer.ipc_path.parent.stat().st_mode & 0o777 == 0o700
    assert sealer.ipc_path.stat().st_mode & 0o777 == 0o600


async def test_management_namespaces_are_refused_at_rpc(stack: Stack) -> None:
    """personal_, admin_, miner_ and debug_ calls at /rpc get -32601, with an admin key too."""
    batch = [
        {"jsonrpc": "2.0", "id": i, "method": m, "params": []} for i, m in enumerate(DENIED_CALLS)
    ]
    async with httpx.AsyncClient(timeout=30) as client:
        answer = await client.post(
            f"{stack.gateway.url}/rpc", json=batch, headers={"X-API-Key": stack.admin_key}
        )
    assert [item["error"]["code"] for item in answer.json()] == [-32601] * len(DENIED_CALLS)


async def test_management_namespaces_have_no_rest_route(stack: Stack) -> None:
    """The REST API offers no way to them: the services' own /api/v1/rpc is not routed."""
    call = {"method": "personal_unlockAccount", "params": []}
    async with httpx.AsyncClient(timeout=30, headers={"X-API-Key": stack.admin_key}) as client:
        statuses = [
            (await client.post(f"{stack.api}/rpc", json=call)).status_code,
            (await client.post(f"{stack.api}/personal/unlockAccount", json={})).status_code,
            (await client.post(f"{stack.api}/miner/start", json={})).status_code,
        ]
    assert statuses == [404, 404, 404]


async def test_service_nodes_serve_no_management_namespace(geth_cluster: GethCluster) -> None:
    """The pool nodes themselves refuse miner_, personal_ and admin_ (method not found)."""
    codes = []
    async with httpx.AsyncClient(timeout=10) as client:
        for method in ("miner_stop", "personal_listAccounts", "admin_nodeInfo"):
            with pytest.raises(RpcError) as refused:
                await rpc_call(client, geth_cluster.spec("node-1").rpc_url, method)
            codes.append(refused.value.code)
    assert codes == [-32601] * 3


async def test_unlock_expires_and_later_writes_are_account_locked(flow: Flow, stack: Stack) -> None:
    """Unlocked for 2 s: a send works at once; after the expiry it is 409 account_locked."""
    buyer = flow.addresses[1]
    send = {"from": buyer, "to": flow.addresses[0], "value": 1}
    async with httpx.AsyncClient(
        base_url=stack.api, timeout=60, headers={"X-API-Key": stack.admin_key}
    ) as client:
        unlocked = await ok(
            await client.post(
                "/admin/unlock",
                json={"address": buyer, "password": BUYER_PASSWORD, "durationS": 2},
            )
        )
        within = await client.post("/tx/send", json=send)
        await asyncio.sleep(max(0.0, unlocked["unlocked_until"] - time.time()) + 0.5)
        after = await client.post("/tx/send", json=send)
    assert within.status_code == 200, within.text
    assert after.status_code == 409, after.text
    assert after.json()["error"]["code"] == "account_locked"
