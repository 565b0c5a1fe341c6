"""Measure what the gateway adds to a proxied request: `python -m tests.gateway.overhead`.

A fake read instance and the gateway run as separate processes (as in production, and so
they do not share a GIL with the client); the client times the same GET sent straight to
the instance and through the gateway, alternating blocks so drift hits both alike.
"""

from __future__ import annotations

import argparse
import asyncio
import os
import statistics
import subprocess
import sys
import tempfile
import time
from pathlib import Path

import httpx
from fastapi import FastAPI

from ethgw_wire.http_api import API_KEY_HEADER
from ethgw_wire.registration import InstanceRegistration, RegistryClient, ensure_registry_token
from gateway.keys import create_key
from service_kit.ports import free_port
from tests.gateway.servers import FakeService

PATH = "/api/v1/conn/blockNum"


def upstream_app() -> FastAPI:
    """The fake read instance (uvicorn --factory)."""
    return FakeService("read", "read-bench", seen=_Discard()).app()


class _Discard(list):  # type: ignore[type-arg]
    """A record that keeps nothing, so a long run does not grow memory."""

    def append(self, item: object) -> None:
        pass


async def _wait_up(url: str, timeout_s: float = 30.0) -> None:
    deadline = time.monotonic() + timeout_s
    async with httpx.AsyncClient(trust_env=False) as client:
        while True:
            try:
                if (await client.get(url)).status_code < 500:
                    return
            except httpx.TransportError:
                pass
            if time.monotonic() > deadline:
                raise RuntimeError(f"{url} did not come up")
            await asyncio.sleep(0.1)


async def _time(client: httpx.AsyncClient, url: str, count: int) -> list[float]:
    samples = []
    for _ in range(count):
        started = time.perf_counter()
        response = await client.get(url)
        samples.append(time.perf_counter() - started)
        if response.status_code != 200:
            raise RuntimeError(f"{url}: {response.status_code} {response.text}")
    return samples


async def _concurrent(client: httpx.AsyncClient, url: str, workers: int, seconds: float) -> float:
    done = 0
    stop = time.perf_counter() + seconds

    async def worker() -> None:
        nonlocal done
        while time.perf_counter() < stop:
            await client.get(url)
            done += 1

    await asyncio.gather(*(worker() for _ in range(workers)))
    return done / seconds


def _quantiles(samples: list[float]) -> tuple[float, float, float]:
    cuts = statistics.quantiles(samples, n=100)
    return cuts[49] * 1000, cuts[89] * 1000, cuts[98] * 1000


async def measure(
    upstream_url: str, gateway_url: str, state_dir: Path, key: str, requests: int, blocks: int
) -> None:
    await _wait_up(upstream_url + PATH)
    await _wait_up(gateway_url + "/healthz")
    registration = InstanceRegistration(instance_id="read-bench", kind="read", url=upstream_url)
    registry = RegistryClient(gateway_url, ensure_registry_token(state_dir), registration)
    direct: list[float] = []
    proxied: list[float] = []
    async with (
        registry.running(),
        httpx.AsyncClient(trust_env=False) as plain,
        httpx.AsyncClient(trust_env=False, headers={API_KEY_HEADER: key}) as keyed,
    ):
        await _time(plain, upstream_url + PATH, 200)  # warm-up: connections, caches
        await _time(keyed, gateway_url + PATH, 200)
        for _ in range(blocks):
            direct += await _time(plain, upstream_url + PATH, requests // blocks)
            proxied += await _time(keyed, gateway_url + PATH, requests // blocks)
        direct_rps = await _concurrent(plain, upstream_url + PATH, 16, 3.0)
        proxied_rps = await _concurrent(keyed, gateway_url + PATH, 16, 3.0)
    d50, d90, d99 = _quantiles(direct)
    p50, p90, p99 = _quantiles(proxied)
    print(f"sequential GET {PATH}, {len(direct)} requests each, keep-alive")
    print(f"{'':10}{'p50 ms':>9}{'p90 ms':>9}{'p99 ms':>9}")
    print(f"{'direct':10}{d50:9.3f}{d90:9.3f}{d99:9.3f}")
    print(f"{'gateway':10}{p50:9.3f}{p90:9.3f}{p99:9.3f}")
    print(f"{'overhead':10}{p50 - d50:9.3f}{p90 - d90:9.3f}{p99 - d99:9.3f}")
    print(f"16 concurrent clients, 3 s: direct {direct_rps:.0f} req/s, "
          f"gateway {proxied_rps:.0f} req/s")  # fmt: skip


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--requests", type=int, default=2000)
    parser.add_argument("--blocks", type=int, default=10)
    args = parser.parse_args()
    state_dir = Path(tempfile.mkdtemp(prefix="ethgw-overhead-"))
    key = create_key(state_dir, "bench", "user")
    up_port, gw_port = free_port(), free_port()
    env = {
        **os.environ,
        "ETHGW_GATEWAY_STATE_DIR": str(state_dir),
        "ETHGW_GATEWAY_PORT": str(gw_port),
        "ETHGW_GATEWAY_USER_RATE_PER_S": "1000000",
        "ETHGW_GATEWAY_USER_BURST": "1000000",
    }
    upstream = subprocess.Popen(
        [sys.executable, "-m", "uvicorn", "--factory", "tests.gateway.overhead:upstream_app",
         "--port", str(up_port), "--no-access-log", "--log-level", "warning"],
        stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL,
    )  # fmt: skip
    gateway = subprocess.Popen(
        [sys.executable, "-m", "gateway"],
        env=env,
        stdout=subprocess.DEVNULL,
        stderr=subprocess.DEVNULL,
    )
    try:
        asyncio.run(
            measure(
                f"http://127.0.0.1:{up_port}",
                f"http://127.0.0.1:{gw_port}",
                state_dir,
                key,
                args.requests,
                args.blocks,
            )
        )
    finally:
        for process in (gateway, upstream):
            process.terminate()
            process.wait(timeout=15)


if __name__ == "__main__":
    main()
