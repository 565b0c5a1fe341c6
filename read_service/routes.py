"""The read service's routes: the read operations (GET) and the JSON-RPC reads."""

from __future__ import annotations

from typing import Any

from fastapi import APIRouter

from consumer_service import JsonRpcCall, jsonrpc_router, run_endpoint
from ethgw_wire.http_api import build_router, endpoints_of
from ethgw_wire.messages import TaskMessage
from ethgw_wire.operations import RPC_READ_METHODS, new_task
from ethgw_wire.rpc_params import check_params


class ReadRpcMethods:
    """The node's read methods, passed through as they are; the node's answer is the result."""

    def task_for(self, call: JsonRpcCall, request_id: str) -> TaskMessage | None:
        if call.method not in RPC_READ_METHODS:
            return None
        check_params(call.method, call.params)  # InvalidRpcParamsError: -32602, no task
        return new_task("rpc.call", {"method": call.method, "params": call.params}, request_id)

    def result_of(self, data: Any) -> Any:
        return data


def read_routers() -> list[APIRouter]:
    return [build_router(endpoints_of("read"), run_endpoint), jsonrpc_router(ReadRpcMethods())]
