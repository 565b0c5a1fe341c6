"""The drain before a restart: wait until the providers have nothing in flight on the node.

Only the providers know what they sent a node and have not seen finish; each exports it as
`ethgw_provider_inflight{node}` on its /metrics (`ethgw_wire.provider_metrics`). After the
DRAINING state is published, `drain` lets it reach the providers (`settle_s`), then reads the
node's sum over the providers until it is 0 or `bound_s` has passed since the drain began.
A provider that does not answer makes the count unknown: the drain then waits on, to the
bound, rather than restart a node that may still be serving.
"""

from __future__ import annotations

import asyncio
import logging
import time
from collections.abc import Callable, Sequence
from dataclasses import dataclass
from typing import Protocol

import httpx

from ethgw_wire.provider_metrics import inflight_by_node

log = logging.getLogger("ethgw.manager")

DRAIN_POLL_S = 0.2


class InflightSource(Protocol):
    """Tasks in flight on one node, summed over the providers; None when unknown."""

    async def inflight(self, node: str) -> int | None: ...


class ProviderInflight:
    """Reads every provider's /metrics page; unknown when any provider does not answer."""

    def __init__(self, provider_urls: Sequence[str], timeout_s: float = 1.0) -> None:
        self._urls = tuple(url.rstrip("/") for url in provider_urls)
        self._client = httpx.AsyncClient(timeout=timeout_s, trust_env=False)

    async def inflight(self, node: str) -> int | None:
        counts = await asyncio.gather(*(self._count(url, node) for url in self._urls))
        if any(count is None for count in counts):
            return None
        return sum(count for count in counts if count is not None)

    async def _count(self, url: str, node: str) -> int | None:
        try:
            response = await self._client.get(f"{url}/metrics")
            response.raise_for_status()
            return inflight_by_node(response.text).get(node, 0)
        # ValueError: a page that is not Prometheus text (a wrong URL answering 200).
        except (httpx.HTTPError, ValueError) as error:
            log.info("provider metrics unreadable url=%s error=%s", url, type(error).__name__)
            return None

    async def aclose(self) -> None:
        await self._client.aclose()


@dataclass(frozen=True)
class Drained:
    """How a drain ended: `empty` when the node's count reached 0 within the bound."""

    empty: bool
    waited_s: float
    inflight: int | None  # the last count read (None: unknown)

    def describe(self) -> str:
        """The drain's figures for an event's detail."""
        count = "unknown" if self.inflight is None else str(self.inflight)
        outcome = "empty" if self.empty else "bound"
        return f"drain={outcome} drain_waited_s={self.waited_s:.2f} inflight={count}"


async def drain(
    node: str,
    source: InflightSource,
    *,
    bound_s: float,
    settle_s: float,
    poll_s: float = DRAIN_POLL_S,
    clock: Callable[[], float] = time.monotonic,
) -> Drained:
    """Wait until `node` has nothing in flight, or `bound_s` since the call; never less than
    `settle_s` (the time for a DRAINING state to reach the providers)."""
    began = clock()
    await asyncio.sleep(min(settle_s, bound_s))
    while True:
        remaining = bound_s - (clock() - began)
        count = await _read(source, node, max(remaining, poll_s))
        waited = clock() - began
        if count == 0:
            return Drained(True, waited, 0)
        if waited >= bound_s:
            return Drained(False, waited, count)
        await asyncio.sleep(min(poll_s, bound_s - waited))


async def _read(source: InflightSource, node: str, timeout_s: float) -> int | None:
    """The source's count, unknown when it takes longer than `timeout_s` or fails."""
    try:
        async with asyncio.timeout(timeout_s):
            return await source.inflight(node)
    except TimeoutError:
        return None
