"""The write service's routes: the write operations (POST) and eth_sendRawTransaction.

A write asked to wait for its receipt (waitReceipt) waits in its task, on the provider;
here it waits like a read, up to wait_timeout_s, then answers 202 with its task id."""

from __future__ import annotations

from typing import Any

from fastapi import APIRouter

from consumer_service import JsonRpcCall, jsonrpc_router, run_endpoint
from ethgw_wire.http_api import build_router, endpoints_of
from ethgw_wire.messages import TaskMessage
from ethgw_wire.operations import RPC_SEND_RAW, new_task


class WriteRpcMethods:
    """eth_sendRawTransaction with its one signed transaction; its result is the hash."""

    def task_for(self, call: JsonRpcCall, request_id: str) -> TaskMessage | None:
        if call.method != RPC_SEND_RAW or len(call.params) != 1:
            return None
        return new_task("rpc.send_raw", {"raw_tx": call.params[0]}, request_id)

    def result_of(self, data: Any) -> Any:
        # The task answers what it sent (hash, nonce, ...); JSON-RPC answers the hash alone.
        return data["tx_hash"] if isinstance(data, dict) else data


def write_routers() -> list[APIRouter]:
    return [build_router(endpoints_of("write"), run_endpoint), jsonrpc_router(WriteRpcMethods())]
