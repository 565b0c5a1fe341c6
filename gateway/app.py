"""The API gateway: one entry point for the REST API, /rpc and the operator endpoints.

In-memory parts (registry, breakers, key ring, rate limits) are made with the app; the
long-lived HTTP clients and background loops in its lifespan, closed in reverse order
(an AsyncExitStack), each cleanup logged if it fails while the others still run.
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
import time
from collections.abc import AsyncIterator, Awaitable, Callable
from contextlib import AsyncExitStack, asynccontextmanager
from typing import get_args

import httpx
from fastapi import FastAPI, Security
from fastapi.exceptions import RequestValidationError
from fastapi.security import APIKeyHeader
from prometheus_client.registry import CollectorRegistry
from starlette.exceptions import HTTPException as StarletteHTTPException

from ethgw_wire.http_api import API_KEY_HEADER, Service
from ethgw_wire.registration import ensure_registry_token
from ethgw_wire.request_auth import RequestSigner, SigningAuth, ensure_request_key
from ethgw_wire.settings import KafkaSettings
from gateway import (
    routes_admin,
    routes_dashboard,
    routes_events,
    routes_ops,
    routes_registry,
    routes_rpc,
    routes_ws,
)
from gateway.chain_stream import ChainStream
from gateway.config import GatewaySettings
from gateway.errors import (
    GatewayError,
    gateway_error_handler,
    http_error_handler,
    validation_error_handler,
)
from gateway.event_hub import PollingTail
from gateway.inflight import InflightProbe
from gateway.kafka_lag import LagProbe
from gateway.keys import KeyFileError, admin_key_path, ensure_admin_key
from gateway.manager_client import ManagerClient
from gateway.metrics import RegistryCollector
from gateway.middleware import GatewayMiddleware, RouteTable
from gateway.routes_api import api_router, tasks_router
from gateway.state import GatewayState
from gateway.upstream import Upstreams, upstream_session

log = logging.getLogger("ethgw.gateway")

# Declared so that /docs offers an "Authorize" box; the middleware does the checking.
API_KEY_SCHEME = APIKeyHeader(name=API_KEY_HEADER, auto_error=False, scheme_name="ApiKey")

DESCRIPTION = f"""
The single entry point of the Ethereum service platform.

* **REST API** under `/api/v1`: reads (GET) go to read service instances, writes (POST)
  to write service instances. A request answers 200 with its result, or 202 with a
  `task_id` to ask `GET /api/v1/tasks/{{task_id}}` later.
* **`/rpc`**: standard Ethereum JSON-RPC 2.0 (single or batch) for web3 clients; over a
  WebSocket (`ws://.../rpc`, key in the header or `?key=`) also `eth_subscribe` to
  `newHeads`, `logs` and `newPendingTransactions`.
* **`GET /api/v1/events`**: the platform events (projects published and bought, mints,
  burns, transfers) as Server-Sent Events, resumable with `Last-Event-ID`.
* **`/admin/...`**: operator endpoints (admin key).

Every answer is an envelope `{{status, message, data, task_id, request_id, error}}` whose
`status` repeats the HTTP status. Send your key in the `{API_KEY_HEADER}` header.
"""

TAGS = [
    {"name": "read", "description": "Chain and token reads (read service)"},
    {"name": "write", "description": "Transactions and accounts (write service)"},
    {"name": "admin", "description": "Writes that need an admin key (mint, burn, set, deploy)"},
    {"name": "tasks", "description": "Status and result of a task answered 202"},
    {"name": "json-rpc", "description": "Ethereum JSON-RPC pass-through"},
    {"name": "events", "description": "The platform events, live (Server-Sent Events)"},
    {"name": "operator", "description": "Cluster and instances (admin key)"},
    {"name": "ops", "description": "Health, readiness and metrics"},
]


async def _prune_loop(state: GatewayState) -> None:
    """Drop instances whose heartbeats stopped (choose() skips them even before), and say
    once when a kind starts and stops failing static."""
    static: set[Service] = set()
    while True:
        await asyncio.sleep(max(0.05, state.registry.ttl_s / 4))
        now = time.monotonic()
        for instance in state.registry.expire(now):
            log.warning(
                "instance expired id=%s kind=%s ttl_s=%s",
                instance.instance_id,
                instance.kind,
                state.registry.ttl_s,
            )
        for kind in get_args(Service):
            failing = state.registry.failing_static(kind, now)
            if failing != (kind in static):
                static.symmetric_difference_update({kind})
                log.warning(
                    "every instance silent, routing to them anyway kind=%s"
                    if failing
                    else "instances heard again, fail static over kind=%s",
                    kind,
                )


async def _reload_keys_loop(state: GatewayState) -> None:
    """Pick up keys made or revoked while the gateway runs (`ethgw` edits the file)."""
    while True:
        await asyncio.sleep(state.settings.keys_reload_s)
        try:
            revoked = await asyncio.to_thread(state.keyring.reload_if_changed)
        except (KeyFileError, OSError) as error:
            log.error("keys file unreadable, keeping the loaded keys error=%s", error)
            continue
        if revoked is not None:
            state.limiter.forget(state.keyring.key_ids())
            sockets = state.subscriptions.end_sessions_of(revoked)
            log.info(
                "api keys reloaded count=%d revoked=%d sockets_closed=%d",
                len(state.keyring),
                len(revoked),
                sockets,
            )


def _logged(name: str, close: Callable[[], Awaitable[object]]) -> Callable[[], Awaitable[None]]:
    """A cleanup step that logs its failure instead of stopping the ones after it."""

    async def run() -> None:
        try:
            await close()
        except Exception:
            log.exception("cleanup failed step=%s", name)

    return run


def _cancelling(task: asyncio.Task[None]) -> Callable[[], Awaitable[None]]:
    async def cancel() -> None:
        task.cancel()
        with contextlib.suppress(asyncio.CancelledError):
            await task

    return cancel


def _lifespan(
    state: GatewayState, kafka: KafkaSettings
) -> Callable[[FastAPI], contextlib.AbstractAsyncContextManager[None]]:
    @asynccontextmanager
    async def lifespan(app: FastAPI) -> AsyncIterator[None]:
        settings = state.settings
        # Start-up file work (small files, once): keys, the first admin key, the token.
        if ensure_admin_key(settings.state_dir):
            log.info("admin key created path=%s", admin_key_path(settings.state_dir))
        state.keyring.reload_if_changed()
        state.registry_token = ensure_registry_token(settings.state_dir)
        signer = RequestSigner(ensure_request_key())
        async with AsyncExitStack() as stack:
            upstream_client = upstream_session(
                settings.upstream_max_connections,
                settings.upstream_timeout_s,
                settings.upstream_connect_timeout_s,
            )
            stack.push_async_callback(_logged("upstream client", upstream_client.close))
            manager_client = httpx.AsyncClient(
                base_url=settings.manager_url,
                timeout=settings.manager_timeout_s,
                trust_env=False,
                auth=SigningAuth(signer),
            )
            stack.push_async_callback(_logged("manager client", manager_client.aclose))
            state.upstreams_ = Upstreams(
                state.registry,
                upstream_client,
                settings.get_retries,
                signer=signer,
                startup_grace_s=settings.startup_grace_s,
                max_connections=settings.upstream_max_connections,
                pool_timeout_s=settings.upstream_timeout_s,
            )
            state.manager_ = ManagerClient(
                manager_client, settings.manager_timeout_s, settings.manager_action_timeout_s
            )
            # Connects on the dashboard's first look, not here: no Kafka, no delay at start.
            state.lag_probe_ = LagProbe(
                kafka,
                settings.provider_group_id,
                (kafka.topic_read, kafka.topic_write),
                timeout_s=settings.kafka_lag_timeout_s,
            )
            stack.push_async_callback(_logged("kafka lag probe", state.lag_probe_.aclose))
            provider_client = httpx.AsyncClient(
                timeout=settings.provider_metrics_timeout_s, trust_env=False
            )
            stack.push_async_callback(_logged("provider client", provider_client.aclose))
            state.inflight_probe_ = InflightProbe(provider_client, settings.provider_urls)
            stack.push_async_callback(_logged("inflight probe", state.inflight_probe_.aclose))
            state.chain_stream_ = ChainStream(kafka, state.subscriptions.deliver_head)
            stack.push_async_callback(_logged("chain stream", state.chain_stream_.aclose))
            for name, loop in (("prune", _prune_loop), ("keys", _reload_keys_loop)):
                task = asyncio.create_task(loop(state), name=f"gateway-{name}")
                stack.push_async_callback(_logged(name, _cancelling(task)))
            # The one live tail of this instance's event streams; idle while none is open.
            tail = PollingTail(state.events.hub, state.events.pages, settings.events_poll_s)
            tail_task = asyncio.create_task(tail.run(), name="gateway-event-tail")
            stack.push_async_callback(_logged("event tail", _cancelling(tail_task)))
            log.info(
                "gateway started url=%s keys=%d ttl_s=%s manager=%s",
                settings.url,
                len(state.keyring),
                settings.registry_ttl_s,
                settings.manager_url,
            )
            yield
            log.info("gateway stopping")

    return lifespan


def create_app(
    settings: GatewaySettings | None = None, kafka_settings: KafkaSettings | None = None
) -> FastAPI:
    """The gateway app; `kafka_settings` (default: ETHGW_KAFKA_*) is the broker the
    dashboard asks for the providers' lag."""
    settings = settings or GatewaySettings()
    state = GatewayState.from_settings(settings)
    app = FastAPI(
        title="ethgw API gateway",
        version="1",
        description=DESCRIPTION,
        openapi_tags=TAGS,
        lifespan=_lifespan(state, kafka_settings or KafkaSettings()),
    )
    app.state.gateway = state
    metrics_registry = CollectorRegistry(auto_describe=True)
    metrics_registry.register(RegistryCollector(state.registry))
    app.state.metrics_registry = metrics_registry

    keyed = [Security(API_KEY_SCHEME)]
    routers = [
        (api_router(), keyed),
        (tasks_router, keyed),
        (routes_rpc.router, keyed),
        (routes_events.router, keyed),
        (routes_admin.router, keyed),
        (routes_dashboard.data_router, keyed),
        (routes_dashboard.page_router, []),
        (routes_registry.router, []),
        (routes_ops.router, []),
    ]
    for router, dependencies in routers:
        app.include_router(router, dependencies=dependencies)
    app.include_router(routes_ws.router)  # checks the key itself (the middleware is HTTP's)

    app.add_exception_handler(RequestValidationError, validation_error_handler)
    app.add_exception_handler(StarletteHTTPException, http_error_handler)
    app.add_exception_handler(GatewayError, gateway_error_handler)
    table = RouteTable([router for router, _ in routers])
    app.add_middleware(GatewayMiddleware, state=state, routes=table)
    app.state.methods_at = table.methods_at  # a 405's Allow (gateway/errors.py)
    return app
