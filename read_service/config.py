"""Settings of the read service (env prefix ETHGW_READ_)."""

from __future__ import annotations

from pydantic_settings import SettingsConfigDict

from consumer_service import ConsumerServiceSettings


class ReadServiceSettings(ConsumerServiceSettings):
    model_config = SettingsConfigDict(env_prefix="ETHGW_READ_", extra="ignore")

    http_port: int = 8100
