"""Settings of the write service (env prefix ETHGW_WRITE_)."""

from __future__ import annotations

from pydantic_settings import SettingsConfigDict

from consumer_service import ConsumerServiceSettings


class WriteServiceSettings(ConsumerServiceSettings):
    model_config = SettingsConfigDict(env_prefix="ETHGW_WRITE_", extra="ignore")

    http_port: int = 8150
