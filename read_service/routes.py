"""The read service's routes: the read operations (GET) and the JSON-RPC reads."""

from __future__ import annotations

from typing import Any

from fastapi import APIRouter

from consumer_service import JsonRpcCall, NodeReports, jsonrpc_router, run_endpoint
from ethgw_wire.http_api import build_router, endpoints_of
from ethgw_wire.messages import TaskMessage
from ethgw_wire.operations import RPC_READ_METHODS, new_task
from ethgw_wire.rpc_params import CallCaps, capped_params, check_params
from read_service.config import ReadServiceSettings


class ReadRpcMethods:
    """The node's read methods, passed through within the caps; the node's answer is the
    result."""

    def __init__(self, caps: CallCaps) -> None:
        self._caps = caps

    def task_for(
        self, call: JsonRpcCall, request_id: str, nodes: NodeReports
    ) -> TaskMessage | None:
        if call.method not in RPC_READ_METHODS:
            return None
        # InvalidRpcParamsError from either: -32602, no task.
        check_params(call.method, call.params)
        params = capped_params(call.method, call.params, self._caps, chain_head(nodes))
        return new_task("rpc.call", {"method": call.method, "params": params}, request_id)

    def result_of(self, data: Any) -> Any:
        return data


def chain_head(nodes: NodeReports) -> int | None:
    """The highest block a node reports, None when no report says."""
    blocks = [report.block for _, report in nodes.items() if report.block is not None]
    return max(blocks, default=None)


def read_routers(settings: ReadServiceSettings) -> list[APIRouter]:
    caps = CallCaps(settings.logs_max_blocks, settings.call_max_gas)
    return [build_router(endpoints_of("read"), run_endpoint), jsonrpc_router(ReadRpcMethods(caps))]
