"""The cluster manager's operator API (geth_cluster.api), as the gateway calls it.

Its failures are translated here into the gateway's errors, so the admin routes only
say what to call.
"""

from __future__ import annotations

import logging
from typing import Any, Literal

import httpx

from gateway.errors import (
    GatewayError,
    ManagerFailedError,
    ManagerTimeoutError,
    ManagerUnavailableError,
    NotOfferedError,
    UnknownNodeError,
)
from gateway.metrics import MANAGER_FAILURES

log = logging.getLogger("ethgw.gateway")

NodeAction = Literal["restart", "cordon", "uncordon"]
MiningAction = Literal["start", "stop"]


class ManagerRefusedError(GatewayError):
    """The cluster manager refused the request (e.g. a node already restarting)."""

    code = "manager_refused"

    def __init__(self, reason: str, status: int) -> None:
        super().__init__(reason)
        self.status = status


class ManagerClient:
    def __init__(self, client: httpx.AsyncClient, timeout_s: float, action_timeout_s: float):
        self._client = client  # its base_url is the manager's
        self._timeout_s = timeout_s
        self._action_timeout_s = action_timeout_s

    async def snapshot(self) -> dict[str, Any]:
        """Every pool node with zone, distance and ratios; LBH and the bounds."""
        data = await self._call("GET", "/nodes", self._timeout_s)
        if not isinstance(data, dict):
            raise ManagerFailedError("the cluster manager's snapshot is not an object")
        return data

    async def events(self) -> list[dict[str, Any]]:
        """The manager's recent life-cycle events, oldest first."""
        data = await self._call("GET", "/events", self._timeout_s)
        events = data.get("events") if isinstance(data, dict) else None
        if not isinstance(events, list):
            raise ManagerFailedError("the cluster manager's events are not a list")
        return [e for e in events if isinstance(e, dict)]

    async def lbh_history(self) -> list[tuple[float, float]]:
        """(wall time, LBH) of the manager's recent ticks, oldest first."""
        data = await self._call("GET", "/lbh", self._timeout_s)
        points = data.get("points") if isinstance(data, dict) else None
        if not isinstance(points, list):
            raise ManagerFailedError("the cluster manager's LBH history is not a list")
        try:
            return [(float(at), float(value)) for at, value in points]
        except (TypeError, ValueError):
            raise ManagerFailedError("the cluster manager's LBH history is malformed") from None

    async def node_action(self, node_id: str, action: NodeAction) -> Any:
        return await self._call("POST", f"/nodes/{node_id}/{action}", self._action_timeout_s)

    async def mining(self, action: MiningAction) -> Any:
        return await self._call("POST", f"/mining/{action}", self._action_timeout_s)

    async def _call(self, method: str, path: str, timeout_s: float) -> Any:
        try:
            response = await self._client.request(method, path, timeout=timeout_s)
        except httpx.TimeoutException:
            MANAGER_FAILURES.labels("timeout").inc()
            raise ManagerTimeoutError(
                f"the cluster manager did not answer {method} {path} within {timeout_s:.0f} s"
            ) from None
        except httpx.TransportError as error:
            MANAGER_FAILURES.labels("unreachable").inc()
            log.warning("manager unreachable path=%s error=%s", path, type(error).__name__)
            raise ManagerUnavailableError("the cluster manager cannot be reached") from None
        detail = _detail(response)
        status = response.status_code
        if status < 400:
            try:
                return response.json()
            except ValueError:
                MANAGER_FAILURES.labels("bad_answer").inc()
                raise ManagerFailedError("the cluster manager's answer is not JSON") from None
        if status in (404, 405) and detail in ("Not Found", "Method Not Allowed"):
            # FastAPI's own answer for a route it lacks: this manager does not offer it yet.
            raise NotOfferedError(f"the cluster manager does not offer {method} {path}")
        if status == 404:
            raise UnknownNodeError(detail)
        if status < 500:
            raise ManagerRefusedError(detail, status)
        MANAGER_FAILURES.labels("error").inc()
        raise ManagerFailedError(f"the cluster manager failed: {detail}")


def _detail(response: httpx.Response) -> str:
    try:
        body = response.json()
    except ValueError:
        return response.text[:200]
    if isinstance(body, dict):
        detail = body.get("detail") or body.get("message") or body
        return detail if isinstance(detail, str) else str(detail)[:200]
    return str(body)[:200]
