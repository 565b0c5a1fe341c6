"""Calls to the service instances: choose by round robin, guard with the breakers,
retry where it is safe, sign each (ethgw_wire.request_auth: the services take nothing
unsigned), and tell an answer from a failure.

An answer is anything the service said as JSON, whatever its status: a 503 envelope
saying no node is available, a 500 envelope for an error one request caused, a JSON-RPC
error object are the service working. A failure is a transport error, a timeout, a 5xx
that is not JSON (a crash page), or an answer the instance marks as its own failure
(INSTANCE_FAULT_HEADER: its Kafka is unreachable): those count against the instance's
breaker. So no content a client sends can open a breaker: the services answer every
error of theirs as JSON.
"""

from __future__ import annotations

import asyncio
import json
import time
from collections.abc import Callable, Mapping
from dataclasses import dataclass

import aiohttp
from starlette.responses import Response
from yarl import URL

from ethgw_wire.callers import CALLER_HEADER
from ethgw_wire.http_api import Service
from ethgw_wire.registration import INSTANCE_FAULT_HEADER
from ethgw_wire.request_auth import RequestSigner
from gateway.errors import (
    GatewayError,
    NoInstanceError,
    UpstreamFailedError,
    UpstreamTimeoutError,
)
from gateway.instance_registry import Instance, Registry
from gateway.jsonrpc import loads
from gateway.metrics import NO_INSTANCE, RETRIES, UPSTREAM_FAILURES
from service_kit.logs import get_logger

log = get_logger("ethgw.gateway")

NO_INSTANCE_LOG_S = 10.0
# Idle pooled connections close before the services' side does (service_kit/serving.py).
UPSTREAM_KEEP_ALIVE_S = 30.0

_FAULT_HEADER = INSTANCE_FAULT_HEADER.lower()
# Response headers of a service that mean something to the client.
_PASSED_BACK = ("content-type", "retry-after", "location", "link")


@dataclass(frozen=True)
class UpstreamAnswer:
    status: int
    content: bytes
    headers: Mapping[str, str]
    instance_id: str

    def json(self) -> object:
        """The answer's JSON (ValueError when it is none, NaN and Infinity included)."""
        return loads(self.content)

    def to_response(self) -> Response:
        headers = {k: v for k, v in self.headers.items() if k in _PASSED_BACK}
        return Response(self.content, status_code=self.status, headers=headers)


class GatewayBusyError(GatewayError):
    """Every connection to the services is in use for longer than the pool wait."""

    status = 503
    code = "gateway_busy"
    retriable = True


def _is_json_object(content: bytes) -> bool:
    try:
        return isinstance(json.loads(content), dict)
    except (ValueError, RecursionError):
        return False


def upstream_session(
    max_connections: int, timeout_s: float, connect_timeout_s: float
) -> aiohttp.ClientSession:
    """The gateway's HTTP client to the service instances.

    aiohttp, not httpx: with hundreds of requests queued for a pool of hundreds of
    connections, httpcore's pool assignment is quadratic (encode/httpcore#1035) and took
    59% of the gateway's CPU at 200 users, until its loop was too late for its own
    connects and heartbeats (docs/benchmarks.md). Requests beyond `max_connections` wait
    in Upstreams' admission, not in the connector, so a full pool is told apart from a
    slow instance.
    """
    connector = aiohttp.TCPConnector(
        limit=max_connections, limit_per_host=0, keepalive_timeout=UPSTREAM_KEEP_ALIVE_S
    )
    timeout = aiohttp.ClientTimeout(total=timeout_s, sock_connect=connect_timeout_s)
    return aiohttp.ClientSession(
        connector=connector, timeout=timeout, trust_env=False, auto_decompress=False
    )


class Upstreams:
    def __init__(
        self,
        registry: Registry,
        session: aiohttp.ClientSession,
        retries: int,
        clock: Callable[[], float] = time.monotonic,
        *,
        signer: RequestSigner,
        max_connections: int,
        pool_timeout_s: float,
        startup_grace_s: float = 0.0,
    ) -> None:
        self._registry = registry
        self._session = session
        self._signer = signer
        self._admission = asyncio.Semaphore(max_connections)
        self._pool_timeout_s = pool_timeout_s
        self._retries = retries
        self._clock = clock
        self._grace_ends = clock() + startup_grace_s
        self._no_instance_logged: dict[Service, float] = {}

    async def call(
        self,
        kind: Service,
        method: str,
        path: str,
        *,
        idempotent: bool,
        query: str = "",
        content: bytes | None = None,
        headers: Mapping[str, str] | None = None,
        fallback_kind: Service | None = None,
    ) -> UpstreamAnswer:
        """Send one request to an instance of `kind` and return its answer.

        An idempotent request (GET, a read over JSON-RPC) is retried on another
        instance after a failure. Any other request is retried only when its connection
        could not even be opened, so nothing was sent and it cannot run twice: a write
        that reached a service and then lost its answer may have been submitted.
        `fallback_kind` serves when `kind` has no healthy instance (task status, which
        both kinds answer).
        """
        await self._await_first_registration(kind, fallback_kind)
        tried: list[str] = []
        failure: GatewayError | None = None
        # An instance's own failure it still answered: the client gets that answer when
        # no other instance may be tried.
        faulted: UpstreamAnswer | None = None
        for attempt in range(1 + self._retries):
            now = self._clock()
            instance = self._registry.choose(kind, now, exclude=tried)
            if instance is None and fallback_kind is not None:
                instance = self._registry.choose(fallback_kind, now, exclude=tried)
            if instance is None:
                if faulted is not None:
                    return faulted
                if failure is not None:
                    raise failure  # the failure just seen says more than "no instance"
                NO_INSTANCE.labels(kind).inc()
                raise self._no_instance(kind, now)
            if attempt:
                RETRIES.labels(kind).inc()
            tried.append(instance.instance_id)
            answer, failure, sent = await self._attempt(
                instance, method, path, query, content, headers
            )
            if answer is not None and (failure is None or not idempotent):
                return answer
            faulted = answer or faulted
            if not (idempotent or not sent):
                break
        if faulted is not None:
            return faulted
        assert failure is not None
        raise failure

    async def _await_first_registration(self, kind: Service, fallback: Service | None) -> None:
        """In the start-up grace, wait until an instance of the kind (or the fallback kind)
        is registered: after a gateway restart they come back within one heartbeat."""
        while self._clock() < self._grace_ends:
            kinds = [kind] if fallback is None else [kind, fallback]
            now = self._clock()
            if any(self._registry.retry_after(k, now) is not None for k in kinds):
                return
            await asyncio.sleep(0.05)

    async def _attempt(
        self,
        instance: Instance,
        method: str,
        path: str,
        query: str,
        content: bytes | None,
        headers: Mapping[str, str] | None,
    ) -> tuple[UpstreamAnswer | None, GatewayError | None, bool]:
        """One call: (answer, None, True), (None, the failure, whether it was sent), or
        (answer, the failure, True) when the instance answered that it is failing."""
        url = instance.url + path + (f"?{query}" if query else "")
        breaker = instance.breaker
        try:
            async with asyncio.timeout(self._pool_timeout_s):
                await self._admission.acquire()
        except TimeoutError:
            # Every connection is busy: not the instance's fault, no breaker count.
            breaker.release()
            raise GatewayBusyError("the gateway is at its connection limit; retry") from None
        except BaseException:
            breaker.release()
            raise
        try:
            status, content, answer_headers = await self._send(method, url, content, headers)
        except (aiohttp.ClientConnectorError, aiohttp.ConnectionTimeoutError) as error:
            return None, self._failed(instance, "connect", error), False
        except (TimeoutError, aiohttp.SocketTimeoutError) as error:
            return None, self._failed(instance, "timeout", error), True
        except aiohttp.ClientError as error:
            return None, self._failed(instance, "protocol", error), True
        except BaseException:
            breaker.release()  # cancelled (the client went away): neither outcome
            raise
        finally:
            self._admission.release()
        if status >= 500 and not _is_json_object(content):
            return None, self._failed(instance, "bad_answer", None, status), True
        answer = UpstreamAnswer(status, content, answer_headers, instance.instance_id)
        if _FAULT_HEADER in answer_headers:
            return answer, self._failed(instance, "instance_fault", None, status), True
        if breaker.record_success() is not None:
            log.info("breaker_closed", instance=instance.instance_id, kind=instance.kind)
        return answer, None, True

    async def _send(
        self, method: str, url: str, content: bytes | None, headers: Mapping[str, str] | None
    ) -> tuple[int, bytes, dict[str, str]]:
        caller = None if headers is None else headers.get(CALLER_HEADER)
        signed = {**(headers or {}), **self._signer.headers(method, url, content, caller)}
        # encoded=True: sent exactly as signed (the path and the client's query are already
        # encoded), never re-quoted by yarl.
        request = self._session.request(
            method, URL(url, encoded=True), data=content, headers=signed
        )
        async with request as response:
            body = await response.read()
            # Lower-case names, as the answer's headers are looked up.
            return response.status, body, {k.lower(): v for k, v in response.headers.items()}

    def _failed(
        self,
        instance: Instance,
        reason: str,
        error: Exception | None,
        status: int | None = None,
    ) -> GatewayError:
        UPSTREAM_FAILURES.labels(instance.kind, reason).inc()
        changed = instance.breaker.record_failure(self._clock())
        detail = type(error).__name__ if error is not None else f"http_{status}"
        log.warning(
            "upstream_failed",
            instance=instance.instance_id,
            kind=instance.kind,
            reason=reason,
            detail=detail,
            failures=instance.breaker.failures,
        )
        if changed is not None:
            log.warning(
                "breaker_opened",
                instance=instance.instance_id,
                kind=instance.kind,
                open_s=instance.breaker.open_s,
            )
        if reason == "timeout":
            return UpstreamTimeoutError(f"the {instance.kind} service did not answer in time")
        return UpstreamFailedError(f"the {instance.kind} service failed to answer ({reason})")

    def _no_instance(self, kind: Service, now: float) -> NoInstanceError:
        wait = self._registry.retry_after(kind, now)
        if wait is None:
            reason = f"no {kind} service instance is registered"
        else:
            reason = f"every {kind} service instance is failing; retry in {wait:.0f} s"
        # Once per kind every NO_INSTANCE_LOG_S: every refused request would flood the log.
        if now - self._no_instance_logged.get(kind, -NO_INSTANCE_LOG_S) >= NO_INSTANCE_LOG_S:
            self._no_instance_logged[kind] = now
            log.warning("no_instance", kind=kind, reason=reason)
        return NoInstanceError(reason, wait)
