"""The task and result messages on Kafka (wire format version 1, JSON).

`reply_to` and `min_block` are optional fields of version 1: a reader that does not know one
ignores it (extra="ignore"). A message without `reply_to` is answered on the shared results
topic only; one without `min_block` runs on whichever node the scheduler picks.
"""

from __future__ import annotations

import time
import uuid
from enum import StrEnum
from typing import Annotated, Any, Literal

from pydantic import BaseModel, ConfigDict, Field

from ethgw_wire.callers import Caller

WIRE_VERSION: Literal[1] = 1


def new_task_id() -> str:
    return uuid.uuid4().hex


class TaskMessage(BaseModel):
    """A unit of work: one operation with validated parameters."""

    model_config = ConfigDict(extra="ignore", frozen=True)

    v: Literal[1] = WIRE_VERSION
    task_id: str = Field(default_factory=new_task_id, min_length=1, max_length=64)
    operation: str
    params: dict[str, Any] = Field(default_factory=dict)
    # The signer key that orders a write (also the Kafka message key).
    account: str | None = None
    request_id: str | None = None
    enqueued_at: float = Field(default_factory=time.time)
    # The topic the waiting service instance reads its results from.
    reply_to: str | None = Field(default=None, max_length=249)
    # The API key it runs for (the gateway's stamp); None: the platform itself.
    caller: Caller | None = None
    # Secret parameters (passwords), by name, sealed for the providers: never in `params`.
    sealed: dict[str, Annotated[str, Field(max_length=4096)]] = Field(default_factory=dict)
    # The lowest block the node that runs it must have (read your writes: the block the
    # client saw its write mined in, or the head a JSON-RPC batch was pinned to).
    min_block: int | None = Field(default=None, ge=0)


class TaskStatus(StrEnum):
    ACCEPTED = "accepted"  # on Kafka, not finished yet
    SUCCEEDED = "succeeded"
    FAILED = "failed"


class ErrorInfo(BaseModel):
    """Why a task failed: a stable code for programs, a sentence for people."""

    model_config = ConfigDict(frozen=True)

    code: str
    message: str
    field: str | None = None
    retriable: bool = False


class Timings(BaseModel):
    model_config = ConfigDict(frozen=True)

    queued_s: float = 0.0  # from enqueue to the start of execution
    executed_s: float = 0.0  # execution on the node, receipt wait included


class ResultMessage(BaseModel):
    """The outcome of a task, keyed by task id on the results topic."""

    model_config = ConfigDict(extra="ignore", frozen=True)

    v: Literal[1] = WIRE_VERSION
    task_id: str
    operation: str
    status: TaskStatus
    data: Any = None
    error: ErrorInfo | None = None
    node: str | None = None
    provider: str | None = None
    request_id: str | None = None
    timings: Timings = Field(default_factory=Timings)
    finished_at: float = Field(default_factory=time.time)
    reply_to: str | None = None  # the task's: where the result is also published

    @property
    def done(self) -> bool:
        return self.status is not TaskStatus.ACCEPTED
