"""The whole stack with its Geth nodes in containers (what `ethgw up --runtime docker` runs):
Kafka, the manager, the gateway, a provider and the services work as on processes."""

from __future__ import annotations

import dataclasses
from collections.abc import AsyncIterator
from typing import Any

import httpx
import pytest
import pytest_asyncio
from eth_account import Account

from devstack.docker_engine import Engine
from devstack.sandbox import SANDBOX_SHAPE, Sandbox, open_sandbox
from geth_cluster.runtimes.docker import DockerRuntime

pytestmark = [pytest.mark.slow, pytest.mark.docker]

SHAPE = dataclasses.replace(
    SANDBOX_SHAPE, nodes=2, providers=1, readers=1, writers=1, runtime="docker"
)


@pytest_asyncio.fixture(scope="module", loop_scope="session")
async def docker_stack(
    docker_engine: Engine, tmp_path_factory: pytest.TempPathFactory
) -> AsyncIterator[Sandbox]:
    """A sandbox stack whose sealer and two service nodes are containers."""
    async with open_sandbox(tmp_path_factory.mktemp("docker-stack"), SHAPE) as sandbox:
        runtime = sandbox.cluster.runtime
        assert isinstance(runtime, DockerRuntime)
        try:
            yield sandbox
        finally:
            await runtime.remove_all()


async def _call(sandbox: Sandbox, method: str, path: str, **kwargs: Any) -> dict[str, Any]:
    async with httpx.AsyncClient(headers={"X-API-Key": sandbox.admin_key}, timeout=60.0) as client:
        response = await client.request(method, f"{sandbox.api}{path}", **kwargs)
    assert response.status_code == 200, response.text
    body: dict[str, Any] = response.json()
    return body


async def test_every_node_runs_in_a_container(docker_stack: Sandbox) -> None:
    """The sealer and both service nodes are running containers of the Geth image."""
    runtime = docker_stack.cluster.runtime
    assert isinstance(runtime, DockerRuntime)
    for spec in docker_stack.cluster.specs:
        state = (await runtime.inspect(spec))["State"]
        assert state["Running"], spec.name


async def test_a_read_through_the_gateway_is_answered_by_a_container(
    docker_stack: Sandbox,
) -> None:
    """GET /conn/blockNum goes gateway -> read service -> Kafka -> provider -> a container."""
    body = await _call(docker_stack, "GET", "/conn/blockNum")
    assert body["data"]["block_number"] > 0


async def test_a_mint_through_the_gateway_is_mined_on_the_containers(
    docker_stack: Sandbox,
) -> None:
    """A token mint waited for its receipt shows in the balance read back."""
    address = Account.create().address
    await _call(
        docker_stack,
        "POST",
        "/token/add",
        json={"address": address, "value": 7, "waitReceipt": True},
    )
    body = await _call(docker_stack, "GET", "/token/balance", params={"address": address})
    assert body["data"]["balance"] == 7
