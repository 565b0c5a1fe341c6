"""Operator endpoints through the real gateway, the real cluster manager and the real chain."""

from __future__ import annotations

import asyncio
import time
from collections.abc import AsyncIterator

import httpx
import pytest
import pytest_asyncio

from geth_cluster.cluster import GethCluster
from geth_cluster.layout import SEALER
from tests.pipeline_fixtures import Stack

pytestmark = pytest.mark.slow

# Blocks come every second (block_period 1): a head unchanged for 4 s is a halted chain.
HALT_WINDOW_S = 4.0
RESUME_TIMEOUT_S = 30.0


@pytest_asyncio.fixture(loop_scope="session")
async def operator(stack: Stack) -> AsyncIterator[httpx.AsyncClient]:
    async with httpx.AsyncClient(
        base_url=stack.gateway.url, timeout=60, headers={"X-API-Key": stack.admin_key}
    ) as client:
        yield client


async def sealer_head(cluster: GethCluster) -> int:
    head = (await cluster.heads())[SEALER]
    assert head is not None, "the sealer does not answer"
    return head


async def wait_head_above(cluster: GethCluster, height: int, timeout_s: float) -> int:
    deadline = time.monotonic() + timeout_s
    while time.monotonic() < deadline:
        head = await sealer_head(cluster)
        if head > height:
            return head
        await asyncio.sleep(0.25)
    raise AssertionError(f"the head stayed at or below {height} for {timeout_s:.0f} s")


async def test_cluster_view_comes_from_the_real_manager(operator: httpx.AsyncClient) -> None:
    """GET /admin/cluster lists the session cluster's pool nodes with zone and LBH."""
    response = await operator.get("/admin/cluster")
    assert response.status_code == 200, response.text
    view = response.json()["data"]
    assert {n["node_id"] for n in view["nodes"]} == {"node-1", "node-2"}
    assert isinstance(view["lbh"], float)


async def test_mining_stop_halts_the_head_and_start_resumes_it(
    operator: httpx.AsyncClient, geth_cluster: GethCluster
) -> None:
    """POST /admin/mining/stop: the head stops advancing; /start: it advances again."""
    try:
        stopped = await operator.post("/admin/mining/stop")
        assert stopped.status_code == 200, stopped.text
        halted_at = await sealer_head(geth_cluster)
        await asyncio.sleep(HALT_WINDOW_S)  # proving that nothing happens takes a wait
        still_at = await sealer_head(geth_cluster)
        started = await operator.post("/admin/mining/start")
        assert started.status_code == 200, started.text
        resumed_at = await wait_head_above(geth_cluster, still_at, RESUME_TIMEOUT_S)
    finally:
        await geth_cluster.set_mining(True)  # the shared session chain keeps sealing
    assert stopped.json()["data"]["mining"] is False
    assert stopped.json()["data"]["block"] >= halted_at - 1
    assert still_at <= halted_at + 1  # a block being sealed at the stop may still land
    assert started.json()["data"]["mining"] is True
    assert resumed_at > still_at


async def test_mining_with_a_user_key_is_403(stack: Stack) -> None:
    """A user key cannot stop the chain."""
    async with httpx.AsyncClient(base_url=stack.gateway.url, timeout=30) as client:
        response = await client.post("/admin/mining/stop", headers={"X-API-Key": stack.user_key})
    assert response.status_code == 403
