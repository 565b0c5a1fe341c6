"""POST /api/v1/rpc: one JSON-RPC 2.0 call as a task. Which methods a service takes,
and what its answer holds, the service says with its JsonRpcMethods.

Every answer is a JSON-RPC response object: a call whose params do not fit is -32602
with the reason; an error of the service itself is -32603 from the catch-all of
consumer_service.errors, so no content of a call makes an instance answer plain text.
"""

from __future__ import annotations

from typing import Any, Protocol

from fastapi import APIRouter, Request
from fastapi.responses import JSONResponse
from pydantic import ValidationError

from consumer_service.answers import (
    InvalidCallerError,
    InvalidMinBlockError,
    caller_of,
    min_block_of,
    request_id_of,
)
from consumer_service.schemas import JsonRpcCall
from consumer_service.state import NodeReports, ServiceState, ServiceStateDep
from ethgw_wire.callers import Caller
from ethgw_wire.errors import rpc_code_of
from ethgw_wire.http_api import API_PREFIX
from ethgw_wire.messages import TaskMessage, TaskStatus
from ethgw_wire.rpc_params import InvalidRpcParamsError

INVALID_REQUEST = -32600
METHOD_NOT_FOUND = -32601
INVALID_PARAMS = -32602
INTERNAL_ERROR = -32603
SERVER_ERROR = -32000
RPC_PATH = f"{API_PREFIX}/rpc"


class JsonRpcMethods(Protocol):
    """The JSON-RPC methods one service takes."""

    def task_for(
        self, call: JsonRpcCall, request_id: str, nodes: NodeReports
    ) -> TaskMessage | None:
        """The task behind a call, or None when this service does not take the method;
        raises InvalidRpcParamsError or ValidationError when its params do not fit (or ask
        more than a call may; `nodes` say where the chain's head is)."""
        ...

    def result_of(self, data: Any) -> Any:
        """The call's JSON-RPC result, from its task's result data."""
        ...


def rpc_error(call_id: object, code: int, message: str, data: Any = None) -> dict[str, Any]:
    error: dict[str, Any] = {"code": code, "message": message}
    if data is not None:
        error["data"] = data
    return {"jsonrpc": "2.0", "id": call_id, "error": error}


def _invalid_params_reason(error: ValidationError) -> str:
    first = error.errors()[0]
    field = ".".join(str(part) for part in first.get("loc", ()))
    return f"invalid params: {field} {first['msg']}" if field else f"invalid params: {first['msg']}"


def jsonrpc_router(methods: JsonRpcMethods) -> APIRouter:
    router = APIRouter(prefix=API_PREFIX, tags=["rpc"])

    @router.post("/rpc", summary="One JSON-RPC 2.0 call")
    async def rpc(call: JsonRpcCall, request: Request, state: ServiceStateDep) -> JSONResponse:
        try:
            caller = caller_of(request)
            ahead = state.reads.min_block_max_ahead
            min_block = min_block_of(request, state.chain_head(), ahead)
        except (InvalidCallerError, InvalidMinBlockError) as error:
            return JSONResponse(rpc_error(call.id, INVALID_REQUEST, str(error)))
        return await _answer(methods, call, request_id_of(request), state, caller, min_block)

    return router


async def _answer(
    methods: JsonRpcMethods,
    call: JsonRpcCall,
    request_id: str,
    state: ServiceState,
    caller: Caller | None,
    min_block: int | None = None,
) -> JSONResponse:
    try:
        task = methods.task_for(call, request_id, state.nodes)
    except InvalidRpcParamsError as error:
        return JSONResponse(rpc_error(call.id, INVALID_PARAMS, f"invalid params: {error}"))
    except ValidationError as error:
        return JSONResponse(rpc_error(call.id, INVALID_PARAMS, _invalid_params_reason(error)))
    if task is None:
        message = f"method {call.method} is not available here"
        return JSONResponse(rpc_error(call.id, METHOD_NOT_FOUND, message))
    task = task.model_copy(update={"caller": caller, "min_block": min_block})
    result = await state.tasks.run(task, state.settings.wait_timeout_s)
    if result is None:
        return JSONResponse(rpc_error(call.id, SERVER_ERROR, f"timed out; task {task.task_id}"))
    if result.status is not TaskStatus.SUCCEEDED:
        if result.error is None:
            return JSONResponse(rpc_error(call.id, SERVER_ERROR, "failed"))
        failure = result.error
        data = {"code": failure.code, "retriable": failure.retriable}
        return JSONResponse(rpc_error(call.id, rpc_code_of(failure.code), failure.message, data))
    answer = {"jsonrpc": "2.0", "id": call.id, "result": methods.result_of(result.data)}
    return JSONResponse(answer)
