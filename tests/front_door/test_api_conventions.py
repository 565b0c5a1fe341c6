"""The conventions of the HTTP API through the real stack: the headers of 202, 401 and
429, one error envelope everywhere, the resource-style paths beside the thesis's, paging
with next links, and a page of projects read from the node in one batch."""

from __future__ import annotations

import asyncio
import secrets
from collections.abc import AsyncIterator
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import aiohttp
import httpx
import pytest
import pytest_asyncio

from ethgw_wire.artifacts import load_artifact
from ethgw_wire.http_api import Envelope, ErrorEnvelope
from ethgw_wire.operations import PageParams
from ethgw_wire.request_auth import signing_auth
from gateway.keys import create_key
from geth_cluster.cluster import GethCluster
from provider.chain import Web3NodeClient
from provider.handlers import Handlers, Job
from tests.pipeline_fixtures import (
    ProviderProcess,
    ServerProcess,
    Stack,
    service_process,
    stop_all,
)

pytestmark = pytest.mark.slow

PASSWORD = "conventions-pass-1"
ENVELOPE_MEMBERS = set(Envelope.model_fields)
ERROR_MEMBERS = {"code", "reason", "field", "retriable"}


async def ok(response: httpx.Response) -> Any:
    assert response.status_code == 200, response.text
    return response.json()["data"]


@pytest_asyncio.fixture(scope="module", loop_scope="session")
async def admin(stack: Stack) -> AsyncIterator[httpx.AsyncClient]:
    async with httpx.AsyncClient(
        base_url=stack.api, timeout=60, headers={"X-API-Key": stack.admin_key}
    ) as client:
        yield client


async def new_account(admin: httpx.AsyncClient) -> str:
    """An account made and unlocked through the resource-style paths."""
    address = str((await ok(await admin.post("/accounts", json={"password": PASSWORD})))["address"])
    await ok(await admin.post(f"/accounts/{address}/unlock", json={"password": PASSWORD}))
    return address


# -- 401, and one error envelope ---------------------------------------------------------


async def test_401_says_how_to_authenticate(stack: Stack) -> None:
    """A missing or unknown key answers 401 with WWW-Authenticate naming the header."""
    async with httpx.AsyncClient(base_url=stack.api) as client:
        missing = await client.get("/conn/blockNum")
        unknown = await client.get("/conn/blockNum", headers={"X-API-Key": "ethgw_nope"})
    for response in (missing, unknown):
        assert response.status_code == 401
        assert response.headers["WWW-Authenticate"] == ('ApiKey realm="ethgw", header="X-API-Key"')


async def test_every_error_has_the_one_envelope_shape(stack: Stack) -> None:
    """Gateway refusals, validation errors, unknown paths and service errors are all an
    ErrorEnvelope with the same members."""
    unknown_tx = "0x" + "ab" * 32
    async with httpx.AsyncClient(base_url=stack.api, timeout=60) as anonymous:
        answers = {
            "401 gateway": await anonymous.get("/conn/blockNum"),
            "404 no route": await anonymous.get("/no/such/path"),
        }
    user_headers = {"X-API-Key": stack.user_key}
    async with httpx.AsyncClient(base_url=stack.api, timeout=60, headers=user_headers) as user:
        answers["403 gateway"] = await user.post("/token/add", json={"address": "0x" + "1" * 40})
        answers["422 gateway"] = await user.get("/transactions/0xnothex")
        answers["404 service"] = await user.get(f"/transactions/{unknown_tx}")
    # Straight to a read instance, signed as the gateway signs (an unsigned call is a 401).
    reader = stack.readers[0].url + "/api/v1"
    async with httpx.AsyncClient(base_url=reader, auth=signing_auth()) as service:
        answers["422 service"] = await service.get("/eth/balance", params={"address": "0x1"})
        answers["404 service route"] = await service.get("/no/such/path")
    for name, response in answers.items():
        body = response.json()
        assert response.status_code == int(name.split()[0]), (name, body)
        envelope = ErrorEnvelope.model_validate(body)
        assert envelope.status == response.status_code, name
        assert set(body) <= ENVELOPE_MEMBERS - {"data"}, (name, body)
        assert {"code"} <= set(body["error"]) <= ERROR_MEMBERS, (name, body)


async def test_validation_errors_list_every_bad_field_the_same_way(stack: Stack) -> None:
    """Gateway and service both answer invalid_params naming the first field and listing
    each one."""
    bad = {"address": "0x1"}
    async with httpx.AsyncClient(headers={"X-API-Key": stack.admin_key}) as client:
        at_gateway = (await client.get(f"{stack.api}/eth/balance", params=bad)).json()
        at_service = await client.get(
            f"{stack.readers[0].url}/api/v1/eth/balance", params=bad, auth=signing_auth()
        )
    service_body = at_service.json()
    for body in (at_gateway, service_body):
        assert body["error"]["code"] == "invalid_params"
        assert body["error"]["field"] == "address"
        assert body["errors"][0]["field"] == "address"
    assert set(at_gateway) - {"request_id"} == set(service_body) - {"request_id"}


# -- resource-style paths --------------------------------------------------------------


async def test_resource_paths_answer_as_the_thesis_paths(admin: httpx.AsyncClient) -> None:
    """/accounts, /transactions/{hash}, its receipt and /blocks/{id} answer what the
    deprecated thesis paths answer."""
    sender = await new_account(admin)
    assert sender in (await ok(await admin.get("/accounts")))["accounts"]
    recipient = "0x" + secrets.token_hex(20)
    sent = await ok(
        await admin.post(
            "/transactions", json={"from": sender, "to": recipient, "value": 7, "waitReceipt": True}
        )
    )
    tx_hash, number = sent["tx_hash"], sent["block_number"]
    tx = await ok(await admin.get(f"/transactions/{tx_hash}"))
    receipt = await ok(await admin.get(f"/transactions/{tx_hash}/receipt"))
    by_number = await ok(await admin.get(f"/blocks/{number}"))
    by_hash = await ok(await admin.get(f"/blocks/{by_number['hash']}"))
    count = await ok(await admin.get(f"/blocks/{number}/transactionCount"))
    assert tx == await ok(await admin.get("/tx/txhash", params={"txHash": tx_hash}))
    assert receipt == await ok(await admin.get("/tx/receipt", params={"txHash": tx_hash}))
    assert by_number == await ok(await admin.get("/tx/blocknumber", params={"blockNumber": number}))
    assert by_hash == by_number
    assert tx_hash in by_number["transactions"]
    assert count["count"] == len(by_number["transactions"])
    assert receipt["transactionHash"] == tx_hash


async def test_a_block_id_that_is_neither_number_nor_hash_finds_no_route(
    admin: httpx.AsyncClient,
) -> None:
    """/blocks/{id} takes decimal digits or a 32-byte hash; anything else is 404 no route."""
    response = await admin.get("/blocks/latest")
    assert response.status_code == 404
    assert "no route" in response.json()["error"]["reason"]


# -- paging ------------------------------------------------------------------------------


@dataclass(frozen=True)
class Market:
    project_id: int
    purchases: int


@pytest_asyncio.fixture(scope="module", loop_scope="session")
async def market(admin: httpx.AsyncClient) -> Market:
    """Two projects published and the second bought three times."""
    publisher, buyer = await asyncio.gather(new_account(admin), new_account(admin))

    async def publish_both() -> int:
        """Project A, then project B (one signer, in order); B's id."""
        project_id = 0
        for name in ("Paged Fund A", "Paged Fund B"):
            published = await ok(
                await admin.post(
                    "/token/publish",
                    json={
                        "address": publisher,
                        "time": 1700000000,
                        "projectName": name,
                        "projectHash": "0x" + secrets.token_hex(32),
                        "price": 10,
                        "waitReceipt": True,
                    },
                )
            )
            project_id = published["project_id"]
        return project_id

    # The buyer's tokens (the admin signs) while the publisher publishes.
    funded, project_id = await asyncio.gather(
        admin.post("/token/add", json={"address": buyer, "value": 900, "waitReceipt": True}),
        publish_both(),
    )
    await ok(funded)
    for moment in range(3):
        await ok(
            await admin.post(
                "/token",
                json={
                    "address": buyer,
                    "time": 1700000100 + moment,
                    "projectId": project_id,
                    "waitReceipt": True,
                },
            )
        )
    return Market(project_id, 3)


async def test_purchases_are_paged_with_a_next_link(
    admin: httpx.AsyncClient, market: Market
) -> None:
    """Two purchases a page: the first page links the next (data.next and Link), the last
    has none, and together they hold every purchase once."""
    first = await admin.get(f"/projects/{market.project_id}/purchases", params={"limit": 2})
    page = await ok(first)
    assert (page["total"], page["offset"], len(page["purchases"])) == (3, 0, 2)
    assert page["next"] == f"/api/v1/projects/{market.project_id}/purchases?offset=2&limit=2"
    assert first.headers["Link"] == f'<{page["next"]}>; rel="next"'
    last = await admin.get(admin.base_url.join(page["next"]))
    rest = await ok(last)
    assert rest["next"] is None
    assert "Link" not in last.headers
    ids = [p["purchase_id"] for p in page["purchases"] + rest["purchases"]]
    assert len(set(ids)) == 3


async def test_projects_link_their_next_page(admin: httpx.AsyncClient, market: Market) -> None:
    """A page of projects shorter than the list says where the next one starts."""
    page = await ok(await admin.get("/projects", params={"limit": 1}))
    assert page["total"] >= 2
    assert page["next"] == "/api/v1/projects?offset=1&limit=1"
    assert len(page["projects"]) == 1


async def test_a_page_of_projects_costs_the_node_as_many_requests_whatever_its_length(
    market: Market, geth_cluster: GethCluster, platform_file: Path
) -> None:
    """projects.list sends the node as many HTTP requests for a page of one project as for
    a page of every project: the rows go in one JSON-RPC batch, not one eth_call each."""
    handlers = Handlers(
        None,  # type: ignore[arg-type]  # a read uses no accounts
        None,  # type: ignore[arg-type]  # nor a sender
        load_artifact("PlatformToken"),
        platform_file,
        1.0,
        1,
        (),
    )

    async def requests_for(limit: int) -> tuple[int, int]:
        """(HTTP requests sent to the node, projects in the page)."""
        sent = 0

        async def counted(*_: object) -> None:
            nonlocal sent
            sent += 1

        tracing = aiohttp.TraceConfig()
        tracing.on_request_start.append(counted)
        async with aiohttp.ClientSession(trace_configs=[tracing]) as session:
            node = Web3NodeClient(geth_cluster.spec("node-1").rpc_url, session)
            job = Job(task_id="page", params=PageParams(limit=limit), node=node, node_id="node-1")
            page = await handlers.projects_list(job)
        return sent, len(page["projects"])

    one_row, whole = await requests_for(1), await requests_for(500)
    assert one_row[1] == 1
    assert whole[1] >= 2
    assert whole[0] == one_row[0]


# -- 202 and 429 on a strict front door ---------------------------------------------------


@dataclass(frozen=True)
class StrictDoor:
    """A second gateway on the session pipeline: a user key of 2 requests and 0.2 a second,
    and a write instance whose wait runs out at once (every write answers 202)."""

    api: str
    admin_key: str
    user_key: str


@pytest_asyncio.fixture(scope="module", loop_scope="session")
async def strict_door(
    provider: ProviderProcess, provider_log_dir: Path, tmp_path_factory: pytest.TempPathFactory
) -> AsyncIterator[StrictDoor]:
    state = tmp_path_factory.mktemp("strict-door")
    admin_key = create_key(state, "strict-admin", "admin")
    user_key = create_key(state, "strict-user", "user")
    gateway = ServerProcess(
        "gateway",
        {
            "ETHGW_GATEWAY_STATE_DIR": str(state),
            "ETHGW_GATEWAY_USER_RATE_PER_S": "0.2",
            "ETHGW_GATEWAY_USER_BURST": "2",
        },
        provider_log_dir,
        "strict-gateway",
        "ETHGW_GATEWAY_PORT",
    )
    common = {"gateway_url": gateway.url, "registry_ttl_s": "3"}
    reader = service_process(
        "read", provider_log_dir, "strict-read", state, instance_id="strict-read", **common
    )
    writer = service_process(
        "write",
        provider_log_dir,
        "strict-write",
        state,
        instance_id="strict-write",
        wait_timeout_s="0.05",
        **common,
    )
    processes: list[ServerProcess] = []
    try:
        for process in (gateway, reader, writer):
            process.start()
            processes.append(process)
        await gateway.wait_ready(path="/healthz")
        await reader.wait_ready()
        await writer.wait_ready()
        await gateway.wait_ready(path="/readyz")
        yield StrictDoor(f"{gateway.url}/api/v1", admin_key, user_key)
    finally:
        stop_all(processes)


async def test_202_carries_the_tasks_location_and_when_to_ask(strict_door: StrictDoor) -> None:
    """A write still running answers 202 with Location (the task) and Retry-After, and the
    Location answers the result once it is done."""
    headers = {"X-API-Key": strict_door.admin_key}
    async with httpx.AsyncClient(base_url=strict_door.api, headers=headers, timeout=60) as admin:
        accepted = await admin.post("/accounts", json={"password": PASSWORD})
        assert accepted.status_code == 202, accepted.text
        location = accepted.headers["Location"]
        task_id = accepted.json()["task_id"]
        assert location == f"/api/v1/tasks/{task_id}"
        assert int(accepted.headers["Retry-After"]) >= 1
        later = accepted
        for _ in range(120):
            later = await admin.get(admin.base_url.join(location))
            if later.status_code != 202:
                break
            await asyncio.sleep(0.5)
    assert later.status_code == 200, later.text
    assert later.json()["data"]["address"].startswith("0x")


async def test_429_carries_the_ratelimit_fields(strict_door: StrictDoor) -> None:
    """Past its burst a key gets 429 with Retry-After and the RateLimit pair; the answers
    before it already said what was left."""
    headers = {"X-API-Key": strict_door.user_key}
    async with httpx.AsyncClient(base_url=strict_door.api, headers=headers, timeout=60) as user:
        answers = [await user.get("/conn/blockNum") for _ in range(3)]
    first, _, refused = answers
    assert [a.status_code for a in answers] == [200, 200, 429]
    assert first.headers["RateLimit-Policy"] == '"user";q=2;w=10'
    assert first.headers["RateLimit"] == '"user";r=1;t=0'
    assert refused.headers["RateLimit-Policy"] == '"user";q=2;w=10'
    assert refused.headers["RateLimit"].startswith('"user";r=0;t=')
    assert int(refused.headers["Retry-After"]) >= 1
    assert refused.json()["error"]["code"] == "rate_limited"
