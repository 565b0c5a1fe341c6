"""The gateway's service registry as a service instance sees it.

An instance registers at start-up, heartbeats every ttl/3 and deregisters when it stops;
the gateway drops an instance whose heartbeats stop for a TTL. The registry endpoints
are guarded by a shared secret kept in the state folder (`ensure_registry_token`).

A service uses it like this (in its lifespan):

    token = ensure_registry_token(state_dir)
    registration = InstanceRegistration(instance_id=..., kind="read", url="http://127.0.0.1:8101")
    client = RegistryClient(gateway_url, token, registration)
    await stack.enter_async_context(client.running())   # register + heartbeats + deregister
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
import re
from collections.abc import AsyncIterator
from pathlib import Path
from types import TracebackType
from typing import Annotated, Any, Self

import httpx
from pydantic import BaseModel, ConfigDict, Field, StringConstraints, field_validator

from ethgw_wire.http_api import Service
from service_kit.keyfiles import ensure_random_secret

REGISTRY_TOKEN_HEADER = "X-Registry-Token"
# Set by an instance on an answer that is its own failure (its Kafka is unreachable), not
# the request's: the gateway counts it against the instance's breaker. Any other answer,
# whatever its status, shows the instance working.
INSTANCE_FAULT_HEADER = "X-Instance-Fault"
REGISTRY_PATH = "/registry/instances"
DEFAULT_TTL_S = 10.0

log = logging.getLogger("ethgw.registry")

InstanceId = Annotated[
    str, StringConstraints(pattern=r"^[A-Za-z0-9][A-Za-z0-9._:-]{0,127}$", strict=True)
]


class InstanceRegistration(BaseModel):
    """What an instance tells the gateway: who it is, what it serves and where."""

    model_config = ConfigDict(extra="forbid", frozen=True)

    instance_id: InstanceId
    kind: Service
    url: str = Field(max_length=512, description="Base URL, e.g. http://127.0.0.1:8101")

    @field_validator("url")
    @classmethod
    def _base_url(cls, value: str) -> str:
        try:
            url = httpx.URL(value)
        except httpx.InvalidURL:
            raise ValueError("must be an http(s) URL") from None
        if url.scheme not in ("http", "https") or not url.host:
            raise ValueError("must be an http(s) URL with a host")
        if url.query or url.fragment:
            raise ValueError("must be a base URL without query or fragment")
        # The gateway appends /api/v1/...: no trailing slash, so paths never double it.
        return value.rstrip("/")


class RegistrationAck(BaseModel):
    """The gateway's answer to a registration or a heartbeat (the `data` of its envelope)."""

    instance_id: str
    kind: Service
    url: str
    ttl_s: float
    heartbeat_s: float  # the interval the gateway expects: ttl / 3


# -- the shared token --------------------------------------------------------------------


class RegistryTokenError(RuntimeError):
    """The registry token file exists but holds no token."""


def registry_token_path(state_dir: Path) -> Path:
    # Beside the request key (ServiceAuthSettings), not among the gateway's API keys: a
    # service instance needs these two secrets and nothing else of the state folder.
    return state_dir / "auth" / "registry.token"


def ensure_registry_token(state_dir: Path) -> str:
    """The registry token of this state folder, made (random, mode 0600) on first use, safely
    when the gateway and several services start at once (keyfiles.ensure_random_secret)."""
    path = registry_token_path(state_dir)
    token = ensure_random_secret(path)
    if not token:
        raise RegistryTokenError(f"{path} is empty: delete it to make a new token")
    return token


# -- the client --------------------------------------------------------------------------


class RegistryClient:
    """Registers one instance with the gateway and keeps it registered.

    Never raises for an unreachable or refusing gateway: failures are logged (once per
    outage, not once per beat) and retried at the next heartbeat, so a service starts and
    serves even while the gateway is down, and joins it when it comes (back).
    """

    def __init__(
        self,
        gateway_url: str,
        token: str,
        registration: InstanceRegistration,
        *,
        timeout_s: float = 5.0,
        transport: httpx.AsyncBaseTransport | None = None,
    ) -> None:
        self.registration = registration
        self.registered = False
        # Learnt from the gateway's answer; used when heartbeat_forever gets no interval.
        self.ttl_s: float | None = None
        self._failures = 0
        self._client = httpx.AsyncClient(
            base_url=gateway_url.rstrip("/"),
            headers={REGISTRY_TOKEN_HEADER: token},
            timeout=timeout_s,
            transport=transport,
            trust_env=False,  # the gateway is local: never through an HTTP proxy
        )

    @property
    def _instance_path(self) -> str:
        return f"{REGISTRY_PATH}/{self.registration.instance_id}"

    async def register(self) -> bool:
        """One registration attempt; True when the gateway accepted it."""
        body = self.registration.model_dump(mode="json")
        response = await self._call("POST", REGISTRY_PATH, json=body)
        if response is None:
            return False
        if response.status_code in (200, 201):
            self._accepted(response, "registered")
            return True
        self._refused(response, "register")
        return False

    async def heartbeat(self) -> bool:
        """One heartbeat; re-registers when the gateway has forgotten the instance
        (a gateway restart, or heartbeats lost for longer than the TTL)."""
        if not self.registered:
            return await self.register()
        response = await self._call("PUT", self._instance_path)
        if response is None:
            return False
        if response.status_code == 404:
            self.registered = False
            log.info("registry forgot instance id=%s re-registering", self._id)
            return await self.register()
        if response.status_code == 200:
            self._accepted(response, None)
            return True
        self._refused(response, "heartbeat")
        return False

    async def heartbeat_forever(self, ttl_s: float | None = None) -> None:
        """Heartbeat every ttl/3 until cancelled. The TTL is the gateway's own, as its
        last answer said; `ttl_s` (else 10 s) serves until the gateway has answered, so
        a service configured with another TTL than the gateway's still beats in time."""
        while True:
            await self.heartbeat()
            ttl = self.ttl_s or ttl_s or DEFAULT_TTL_S
            await asyncio.sleep(ttl / 3)

    async def deregister(self) -> bool:
        """Tell the gateway the instance is going; True when it was known and is gone."""
        response = await self._call("DELETE", self._instance_path)
        self.registered = False
        if response is None:
            return False
        if response.status_code in (200, 204):
            log.info("deregistered id=%s", self._id)
            return True
        if response.status_code != 404:
            self._refused(response, "deregister")
        return False

    @contextlib.asynccontextmanager
    async def running(self, ttl_s: float | None = None) -> AsyncIterator[Self]:
        """Registered with heartbeats for the block's life; deregistered and closed after."""
        await self.register()
        beats = asyncio.create_task(self.heartbeat_forever(ttl_s), name="registry-heartbeat")
        try:
            yield self
        finally:
            beats.cancel()
            with contextlib.suppress(asyncio.CancelledError):
                await beats
            await self.deregister()
            await self.aclose()

    async def aclose(self) -> None:
        await self._client.aclose()

    async def __aenter__(self) -> Self:
        return self

    async def __aexit__(
        self,
        exc_type: type[BaseException] | None,
        exc: BaseException | None,
        traceback: TracebackType | None,
    ) -> None:
        await self.aclose()

    # -- internals -----------------------------------------------------------------------

    @property
    def _id(self) -> str:
        return self.registration.instance_id

    async def _call(self, method: str, path: str, **kwargs: Any) -> httpx.Response | None:
        try:
            return await self._client.request(method, path, **kwargs)
        except httpx.HTTPError as error:
            self._failed(f"{method} {path}", type(error).__name__)
            return None

    def _accepted(self, response: httpx.Response, event: str | None) -> None:
        try:
            ack = RegistrationAck.model_validate(response.json().get("data"))
        except (ValueError, AttributeError):
            ack = None
        if ack is not None:
            self.ttl_s = ack.ttl_s
        if self._failures:
            log.info("registry reachable again id=%s after_failures=%d", self._id, self._failures)
            self._failures = 0
        if event is not None:
            log.info(
                "%s id=%s kind=%s url=%s ttl_s=%s",
                event,
                self._id,
                self.registration.kind,
                self.registration.url,
                self.ttl_s,
            )
        self.registered = True

    def _refused(self, response: httpx.Response, action: str) -> None:
        reason = _reason(response)
        if response.status_code == 401:
            # A wrong token is a deployment error, not an outage: say so at every attempt.
            log.error("registry refused the token action=%s id=%s", action, self._id)
            self._failures += 1
            return
        self._failed(action, f"http_{response.status_code} {reason}")

    def _failed(self, action: str, reason: str) -> None:
        self._failures += 1
        # The first failure of an outage is a warning; repeats only every 10th beat.
        level = (
            logging.WARNING if self._failures == 1 or self._failures % 10 == 0 else logging.DEBUG
        )
        log.log(
            level,
            "registry call failed action=%s id=%s reason=%s failures=%d",
            action,
            self._id,
            reason,
            self._failures,
        )


def _reason(response: httpx.Response) -> str:
    try:
        body = response.json()
        text = str(body.get("message") or body.get("detail") or "")
    except (ValueError, AttributeError):
        text = response.text
    return re.sub(r"\s+", " ", text)[:200]
