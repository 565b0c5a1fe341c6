"""The request shapes the shared routes validate."""

from __future__ import annotations

from typing import Any

from pydantic import BaseModel, Field


class TaskIdPath(BaseModel):
    task_id: str = Field(pattern=r"^[0-9a-f]{32}$")


class JsonRpcCall(BaseModel):
    """One JSON-RPC 2.0 call (the gateway splits batches)."""

    jsonrpc: str = Field(pattern=r"^2\.0$")
    method: str = Field(max_length=64)
    params: list[Any] = Field(default_factory=list, max_length=16)
    id: int | str | None = None
