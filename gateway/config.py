"""Gateway settings (env prefix ETHGW_GATEWAY_)."""

from __future__ import annotations

from pathlib import Path

from pydantic import Field, model_validator
from pydantic_settings import BaseSettings, SettingsConfigDict

from ethgw_wire.operations import RPC_READ_METHODS
from ethgw_wire.settings import Port
from service_kit.paths import default_state_dir


class GatewaySettings(BaseSettings):
    """The gateway: where it listens, how it balances, protects and limits."""

    model_config = SettingsConfigDict(env_prefix="ETHGW_GATEWAY_", extra="ignore")

    host: str = "127.0.0.1"
    port: Port = 8000
    # The platform's state folder; the gateway's own files are in <state_dir>/gateway.
    state_dir: Path = Field(default_factory=default_state_dir)

    # Registry: an instance silent for ttl_s is dropped (it heartbeats every ttl_s / 3).
    registry_ttl_s: float = Field(default=10.0, gt=0.0)

    # Circuit breaker per instance.
    breaker_failure_threshold: int = Field(default=5, ge=1)
    breaker_open_s: float = Field(default=10.0, gt=0.0)

    # Upstream calls. The services answer 202 with a task id once their own wait runs out
    # (30 s by default); the gateway waits a little longer so that answer gets through.
    # A dead instance refuses at once; a connect that takes long is this gateway's own loop
    # running late under a burst (1,200 users starting together), which must not open
    # every instance's breaker (docs/benchmarks.md).
    upstream_connect_timeout_s: float = Field(default=10.0, gt=0.0)
    upstream_timeout_s: float = Field(default=35.0, gt=0.0)
    # Every request waiting for its result (up to the services' 30 s) holds a connection:
    # at 1,200 users 512 were all taken and the rest got 503 gateway_busy.
    upstream_max_connections: int = Field(default=2048, ge=1)
    get_retries: int = Field(default=1, ge=0, le=3)  # a GET goes to another instance
    # Just after a (re)start the registry is empty until the instances' next heartbeat
    # (every registry_ttl_s / 3): a request finding no instance of its kind waits up to
    # this long for one to register instead of answering 503 at once.
    startup_grace_s: float = Field(default=5.0, ge=0.0)

    # Per-key token buckets: sustained requests per second and burst, by role.
    user_rate_per_s: float = Field(default=100.0, gt=0.0)
    user_burst: int = Field(default=200, ge=1)
    admin_rate_per_s: float = Field(default=500.0, gt=0.0)
    admin_burst: int = Field(default=1000, ge=1)

    # Heavy JSON-RPC calls (ethgw_wire.operations.RPC_HEAVY_METHODS) one key may run at
    # once; the next is refused with 429 / -32005 while the other keys go on.
    heavy_calls_per_key: int = Field(default=4, ge=1)

    body_limit_bytes: int = Field(default=256 * 1024, ge=1024)
    rpc_batch_limit: int = Field(default=50, ge=1)
    # What /rpc forwards to read instances (the services check the same list): the
    # gateway refuses the rest itself, so a denied call never costs a task.
    rpc_read_methods: tuple[str, ...] = RPC_READ_METHODS

    # eth_subscribe over WebSocket at /rpc (docs/gateway.md, "Subscriptions"): the
    # subscriptions one key may hold across its sockets; the messages a socket may have
    # waiting to be written (a client that lets more pile up is closed, code 1008); the
    # calls one socket may have running at once.
    ws_subscriptions_per_key: int = Field(default=32, ge=1)
    ws_outbox_messages: int = Field(default=1024, ge=1)
    ws_calls_in_flight: int = Field(default=16, ge=1)

    # The cluster manager's operator API (geth_cluster.api).
    manager_url: str = "http://127.0.0.1:8700"
    manager_timeout_s: float = Field(default=10.0, gt=0.0)
    # Operator actions (cordon, restart) answer at once: a restart is accepted with 202
    # and its drain-restart-resync steps go on in the manager (GET /events shows them).
    manager_action_timeout_s: float = Field(default=120.0, gt=0.0)

    # -- the operator's dashboard (GET /dashboard, data at GET /admin/dashboard) --
    # The consumer group whose lag on the task topics is "tasks waiting in Kafka": the
    # providers' (ETHGW_PROVIDER_GROUP_ID, same default). The broker is ETHGW_KAFKA_*.
    provider_group_id: str = "ethgw-providers"
    kafka_lag_timeout_s: float = Field(default=2.0, gt=0.0)
    # The providers' HTTP roots (their /metrics has the tasks in flight per node), as a
    # JSON list in ETHGW_GATEWAY_PROVIDER_URLS; `ethgw up` passes its providers'. Empty: the
    # dashboard's in-flight column shows "-".
    provider_urls: tuple[str, ...] = ()
    provider_metrics_timeout_s: float = Field(default=2.0, gt=0.0)
    # Request rate and latency are over this many finished seconds.
    traffic_window_s: int = Field(default=10, ge=1, le=300)

    # -- the platform event streams (GET /api/v1/events, docs/gateway.md) --
    # How often the live tail asks for the blocks after the last it read: the chain's block
    # period (ETHGW_CLUSTER_BLOCK_PERIOD, 1 s by default).
    events_poll_s: float = Field(default=1.0, gt=0.0)
    # Streams one key may hold open at once; the next is refused 429 event_streams_limited.
    events_streams_per_key: int = Field(default=4, ge=1)
    # A comment line on an idle stream, so proxies and clients keep it open.
    events_keepalive_s: float = Field(default=15.0, gt=0.0)
    # Live batches (one per poll) a stream may have waiting; beyond, it is dropped as slow.
    events_queue_batches: int = Field(default=64, ge=1)
    # A write to a stream that has not drained after this long drops the stream as slow.
    events_write_timeout_s: float = Field(default=10.0, gt=0.0)
    # How long a stream waits for its history page or the live tail's start before it
    # answers 503 or ends.
    events_source_timeout_s: float = Field(default=30.0, gt=0.0)

    # How often the keys file is checked for keys made by `ethgw` while the gateway runs.
    keys_reload_s: float = Field(default=2.0, gt=0.0)

    @model_validator(mode="after")
    def _check(self) -> GatewaySettings:
        if self.upstream_connect_timeout_s > self.upstream_timeout_s:
            raise ValueError("upstream_connect_timeout_s must not exceed upstream_timeout_s")
        return self

    @property
    def gateway_dir(self) -> Path:
        return self.state_dir / "gateway"

    @property
    def url(self) -> str:
        return f"http://{self.host}:{self.port}"
