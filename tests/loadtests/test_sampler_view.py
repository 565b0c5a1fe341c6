"""The bench's view of the cluster manager: the sampler signs its reads of /nodes with the
key of the system's state folder, so a manager that takes signed calls only answers it."""

from __future__ import annotations

import asyncio
import contextlib
from collections.abc import AsyncIterator
from pathlib import Path

import uvicorn
from fastapi import FastAPI

from ethgw_wire.request_auth import SignedRequestsOnly, ensure_request_key
from ethgw_wire.settings import request_key_file
from loadtests.sampler import ResourceSampler
from loadtests.systems import System
from service_kit.ports import free_port

NODES = {
    "lbh": 0.2,
    "nodes": [
        {"node_id": "node-1", "zone": "II", "distance": 0.6, "cpu": 0.8, "lifecycle": "up"},
    ],
}


@contextlib.asynccontextmanager
async def signed_manager(key: bytes) -> AsyncIterator[str]:
    """A real HTTP server answering /nodes, behind the platform's signature check."""
    app = FastAPI()

    @app.get("/nodes")
    async def nodes() -> dict[str, object]:
        return NODES

    port = free_port()
    config = uvicorn.Config(SignedRequestsOnly(app, key), port=port, log_level="warning")
    server = uvicorn.Server(config)
    serving = asyncio.create_task(server.serve())
    try:
        while not server.started:  # noqa: ASYNC110 (uvicorn has no event for it)
            await asyncio.sleep(0.05)
        yield f"http://127.0.0.1:{port}"
    finally:
        server.should_exit = True
        await serving


async def test_sampler_reads_the_managers_view_with_the_systems_key(tmp_path: Path) -> None:
    """The system's own key (not the bench process's) signs the reads: the zones arrive."""
    state = tmp_path / "state-ethgw"
    key = ensure_request_key(request_key_file(state))
    async with signed_manager(key) as url:
        system = System("ethgw-lbh", "http://unused", "", state, [], manager_url=url)
        sampler = ResourceSampler(system, interval_s=0.2)
        stop = asyncio.Event()
        sampling = asyncio.create_task(sampler.run(stop))
        await asyncio.sleep(1.0)
        stop.set()
        await sampling
    assert sampler.zones
    assert {(z.node, z.zone) for z in sampler.zones} == {("node-1", "II")}
