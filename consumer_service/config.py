"""Settings both consumer services share; each subclasses them with its env prefix."""

from __future__ import annotations

import uuid

from pydantic import Field
from pydantic_settings import BaseSettings


class ConsumerServiceSettings(BaseSettings):
    """Where an instance listens, how long it waits for a result, whom it registers with."""

    instance_id: str = Field(default_factory=lambda: f"svc-{uuid.uuid4().hex[:8]}")
    http_host: str = "127.0.0.1"
    http_port: int = 8100
    public_url: str | None = None  # how the gateway reaches this instance
    wait_timeout_s: float = Field(default=30.0, gt=0)  # then 202 with the task id
    gateway_url: str | None = None  # None: do not register
    registry_ttl_s: float = 10.0
    node_stale_s: float = 15.0

    @property
    def url(self) -> str:
        return self.public_url or f"http://{self.http_host}:{self.http_port}"
