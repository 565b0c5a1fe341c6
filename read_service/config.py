"""Settings of the read service (env prefix ETHGW_READ_)."""

from __future__ import annotations

from pydantic import Field
from pydantic_settings import SettingsConfigDict

from consumer_service import ConsumerServiceSettings
from ethgw_wire.rpc_params import LOGS_MAX_BLOCKS


class ReadServiceSettings(ConsumerServiceSettings):
    model_config = SettingsConfigDict(env_prefix="ETHGW_READ_", extra="ignore")

    http_port: int = 8100
    # What one JSON-RPC read may ask of a node; over it, -32602 naming the param, no task.
    logs_max_blocks: int = Field(default=LOGS_MAX_BLOCKS, ge=1)  # blocks one eth_getLogs may span
    # Gas one eth_call or eth_estimateGas may burn; a call giving none gets this much.
    call_max_gas: int = Field(default=10_000_000, ge=21_000)
