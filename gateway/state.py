"""What the gateway's routes and middleware share, and the dependencies that hand it out."""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import Annotated

from fastapi import Depends, Request
from starlette.requests import HTTPConnection

from ethgw_wire.callers import CALLER_HEADER, Caller
from ethgw_wire.http_api import MIN_BLOCK_HEADER, REQUEST_ID_HEADER
from gateway.breaker import CircuitBreaker
from gateway.chain_stream import ChainStream
from gateway.config import GatewaySettings
from gateway.event_hub import EventHub, EventStreams, StreamSlots
from gateway.event_pages import KeyViewers, PipelineEventPages
from gateway.heavy_calls import HeavyCallSlots
from gateway.inflight import InflightProbe
from gateway.instance_registry import Registry
from gateway.jsonrpc import Allowlist
from gateway.kafka_lag import LagProbe
from gateway.keys import ApiKey, KeyRing, Role, keys_path
from gateway.manager_client import ManagerClient
from gateway.ratelimit import Limit, RateLimiter
from gateway.subscriptions import SubscriptionHub
from gateway.traffic import TrafficMeter
from gateway.upstream import Upstreams


@dataclass
class GatewayState:
    """In-memory parts are made with the app; the network clients in its lifespan."""

    settings: GatewaySettings
    registry: Registry
    keyring: KeyRing
    limiter: RateLimiter
    allowlist: Allowlist
    heavy_calls: HeavyCallSlots
    subscriptions: SubscriptionHub
    registry_token: str = ""
    traffic: TrafficMeter = field(default_factory=TrafficMeter)
    upstreams_: Upstreams | None = field(default=None, repr=False)
    manager_: ManagerClient | None = field(default=None, repr=False)
    lag_probe_: LagProbe | None = field(default=None, repr=False)
    inflight_probe_: InflightProbe | None = field(default=None, repr=False)
    chain_stream_: ChainStream | None = field(default=None, repr=False)
    events_: EventStreams | None = field(default=None, repr=False)

    @classmethod
    def from_settings(cls, settings: GatewaySettings) -> GatewayState:
        state = cls(
            settings=settings,
            registry=Registry(
                settings.registry_ttl_s,
                lambda: CircuitBreaker(settings.breaker_failure_threshold, settings.breaker_open_s),
            ),
            keyring=KeyRing(keys_path(settings.state_dir)),
            limiter=RateLimiter(
                {
                    Role.USER: Limit(settings.user_rate_per_s, settings.user_burst),
                    Role.ADMIN: Limit(settings.admin_rate_per_s, settings.admin_burst),
                }
            ),
            allowlist=Allowlist(settings.rpc_read_methods),
            heavy_calls=HeavyCallSlots(settings.heavy_calls_per_key),
            subscriptions=SubscriptionHub(
                settings.ws_subscriptions_per_key, settings.ws_outbox_messages
            ),
        )
        state.events_ = EventStreams(
            hub=EventHub(settings.events_queue_batches),
            pages=PipelineEventPages(lambda: state.upstreams),
            viewers=KeyViewers(lambda: state.upstreams),
            slots=StreamSlots(settings.events_streams_per_key),
            keepalive_s=settings.events_keepalive_s,
            write_timeout_s=settings.events_write_timeout_s,
            source_timeout_s=settings.events_source_timeout_s,
            key_accepted=state.keyring.holds,
        )
        return state

    @property
    def upstreams(self) -> Upstreams:
        if self.upstreams_ is None:
            raise RuntimeError("the gateway's lifespan has not started")
        return self.upstreams_

    @property
    def chain_stream(self) -> ChainStream:
        if self.chain_stream_ is None:
            raise RuntimeError("the gateway's lifespan has not started")
        return self.chain_stream_

    @property
    def events(self) -> EventStreams:
        if self.events_ is None:
            raise RuntimeError("the gateway's event streams are not made")
        return self.events_

    @property
    def manager(self) -> ManagerClient:
        if self.manager_ is None:
            raise RuntimeError("the gateway's lifespan has not started")
        return self.manager_

    @property
    def inflight_probe(self) -> InflightProbe:
        if self.inflight_probe_ is None:
            raise RuntimeError("the gateway's lifespan has not started")
        return self.inflight_probe_

    @property
    def lag_probe(self) -> LagProbe:
        if self.lag_probe_ is None:
            raise RuntimeError("the gateway's lifespan has not started")
        return self.lag_probe_


def get_state(request: Request) -> GatewayState:
    state: GatewayState = request.app.state.gateway
    return state


def get_caller(request: HTTPConnection) -> ApiKey | None:
    """The API key the middleware (or the WebSocket route) accepted for this request
    (None on public routes)."""
    caller: ApiKey | None = getattr(request.state, "api_key", None)
    return caller


def get_request_id(request: HTTPConnection) -> str:
    request_id: str = request.state.request_id
    return request_id


def forward_headers(request: HTTPConnection) -> dict[str, str]:
    """What a service needs of the request: the request id, the body's type, the client's
    lowest block for its read (X-Ethgw-Min-Block) and who calls (the key id and role of the
    API key the gateway verified, which the provider checks account ownership with). Never
    the API key itself, and never a client's own caller header: only headers named here are
    forwarded."""
    headers = {REQUEST_ID_HEADER: get_request_id(request), "accept": "application/json"}
    caller = get_caller(request)
    if caller is not None:
        headers[CALLER_HEADER] = Caller(key_id=caller.key_id, role=caller.role.value).header_value()
    min_block = request.headers.get(MIN_BLOCK_HEADER)
    if min_block is not None:
        headers[MIN_BLOCK_HEADER] = min_block  # the service checks it
    content_type = request.headers.get("content-type")
    if content_type:
        headers["content-type"] = content_type
    if request.client is not None:
        headers["x-forwarded-for"] = request.client.host
    return headers


StateDep = Annotated[GatewayState, Depends(get_state)]
CallerDep = Annotated[ApiKey | None, Depends(get_caller)]
RequestIdDep = Annotated[str, Depends(get_request_id)]
