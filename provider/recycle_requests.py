"""Where a strategy's "recycle this node now" goes: a provider cannot restart a node itself.

Every request is counted (`ethgw_provider_recycle_requests_total{node}`) and logged. When the
provider knows the cluster manager's URL it also asks the manager to restart the node
(`POST /nodes/{id}/restart`, signed as the manager requires: ethgw_wire.request_auth; it
drains, restarts and resyncs the node), at most once per node
per cool-down. The manager answers 409 while a restart runs: that request is then done too.
"""

from __future__ import annotations

import asyncio
import contextlib
import logging

import aiohttp

from ethgw_wire.request_auth import RequestSigner, ensure_request_key
from provider import metrics

log = logging.getLogger("ethgw.provider")

_TIMEOUT_S = 5.0
# The restart route answers 202 once the episode has started, 409 while one is running.
_ACCEPTED = frozenset({202, 409})


class RecycleRequests:
    """Counts, logs and (with a manager URL) forwards the recycle requests of the rounds."""

    def __init__(
        self, manager_url: str | None, cooldown_s: float, signer: RequestSigner | None = None
    ) -> None:
        self._manager_url = None if manager_url is None else manager_url.rstrip("/")
        # The manager takes signed calls only; signed with the state folder's key by default.
        self._signer = signer
        if signer is None and manager_url is not None:
            self._signer = RequestSigner(ensure_request_key())
        self._cooldown_s = cooldown_s
        self._asked_at: dict[str, float] = {}
        self._session: aiohttp.ClientSession | None = None
        self._posts: set[asyncio.Task[None]] = set()

    def request(self, node_id: str, now: float, lbh: float) -> None:
        """The strategy names `node_id` to recycle at `now`; the round goes on at once."""
        metrics.RECYCLE_REQUESTS.labels(node_id).inc()
        forward = self._forward_status(node_id, now)
        log.warning(
            "recycle requested node=%s reason=memory_bound lbh=%.3f manager=%s",
            node_id,
            lbh,
            forward,
        )
        if forward == "asked":
            self._asked_at[node_id] = now
            post = asyncio.create_task(self._post(node_id), name=f"recycle-{node_id}")
            self._posts.add(post)
            post.add_done_callback(self._posts.discard)

    def _forward_status(self, node_id: str, now: float) -> str:
        if self._manager_url is None:
            return "not_configured"
        asked = self._asked_at.get(node_id)
        if asked is not None and now - asked < self._cooldown_s:
            return "cooldown"
        return "asked"

    async def _post(self, node_id: str) -> None:
        url = f"{self._manager_url}/nodes/{node_id}/restart"
        headers = {} if self._signer is None else self._signer.headers("POST", url)
        try:
            async with self._client().post(url, headers=headers) as response:
                status = response.status
        except (aiohttp.ClientError, TimeoutError) as exc:
            status, detail = None, repr(exc)
        else:
            detail = ""
        if status in _ACCEPTED:
            log.info("recycle request taken node=%s status=%d", node_id, status)
            return
        # Not taken: the next time the strategy names the node, ask again.
        self._asked_at.pop(node_id, None)
        log.warning("recycle request failed node=%s status=%s error=%s", node_id, status, detail)

    def _client(self) -> aiohttp.ClientSession:
        if self._session is None:
            self._session = aiohttp.ClientSession(timeout=aiohttp.ClientTimeout(total=_TIMEOUT_S))
        return self._session

    async def join(self) -> None:
        """Wait for the requests under way (each is bounded by its timeout)."""
        while self._posts:
            await asyncio.gather(*self._posts, return_exceptions=True)

    async def close(self) -> None:
        """Finish the requests under way, then close the HTTP session."""
        await self.join()
        if self._session is not None:
            with contextlib.suppress(Exception):
                await self._session.close()
            self._session = None
