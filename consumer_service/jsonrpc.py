"""POST /api/v1/rpc: one JSON-RPC 2.0 call as a task. Which methods a service takes,
and what its answer holds, the service says with its JsonRpcMethods."""

from __future__ import annotations

from typing import Any, Protocol

from fastapi import APIRouter, Request
from fastapi.responses import JSONResponse
from pydantic import ValidationError

from consumer_service.answers import request_id_of
from consumer_service.schemas import JsonRpcCall
from consumer_service.state import ServiceStateDep
from ethgw_wire.http_api import API_PREFIX
from ethgw_wire.messages import TaskMessage, TaskStatus

METHOD_NOT_FOUND = -32601
INVALID_PARAMS = -32602
SERVER_ERROR = -32000


class JsonRpcMethods(Protocol):
    """The JSON-RPC methods one service takes."""

    def task_for(self, call: JsonRpcCall, request_id: str) -> TaskMessage | None:
        """The task behind a call, or None when this service does not take the method."""
        ...

    def result_of(self, data: Any) -> Any:
        """The call's JSON-RPC result, from its task's result data."""
        ...


def rpc_error(call_id: object, code: int, message: str) -> dict[str, Any]:
    return {"jsonrpc": "2.0", "id": call_id, "error": {"code": code, "message": message}}


def jsonrpc_router(methods: JsonRpcMethods) -> APIRouter:
    router = APIRouter(prefix=API_PREFIX, tags=["rpc"])

    @router.post("/rpc", summary="One JSON-RPC 2.0 call")
    async def rpc(call: JsonRpcCall, request: Request, state: ServiceStateDep) -> JSONResponse:
        task = methods.task_for(call, request_id_of(request))
        if task is None:
            message = f"method {call.method} is not available here"
            return JSONResponse(rpc_error(call.id, METHOD_NOT_FOUND, message))
        try:
            result = await state.tasks.run(task, state.settings.wait_timeout_s)
        except ValidationError as exc:
            return JSONResponse(rpc_error(call.id, INVALID_PARAMS, str(exc.errors()[0]["msg"])))
        if result is None:
            return JSONResponse(rpc_error(call.id, SERVER_ERROR, f"timed out; task {task.task_id}"))
        if result.status is not TaskStatus.SUCCEEDED:
            message = result.error.message if result.error else "failed"
            return JSONResponse(rpc_error(call.id, SERVER_ERROR, message))
        answer = {"jsonrpc": "2.0", "id": call.id, "result": methods.result_of(result.data)}
        return JSONResponse(answer)

    return router
