"""The write service's routes: the write operations (POST) and eth_sendRawTransaction.

A write asked to wait for its receipt (waitReceipt) waits in its task, on the provider;
here it waits like a read, up to wait_timeout_s, then answers 202 with its task id."""

from __future__ import annotations

from typing import Any

from fastapi import APIRouter

from consumer_service import JsonRpcCall, NodeReports, jsonrpc_router, run_endpoint
from ethgw_wire.http_api import build_router, endpoints_of
from ethgw_wire.messages import TaskMessage
from ethgw_wire.operations import RPC_SEND_RAW, RawTransactionParams
from ethgw_wire.rpc_params import raw_transaction_sender


class WriteRpcMethods:
    """eth_sendRawTransaction with its one signed transaction; its result is the hash."""

    def task_for(
        self, call: JsonRpcCall, request_id: str, nodes: NodeReports
    ) -> TaskMessage | None:
        if call.method != RPC_SEND_RAW:
            return None
        # Decoded once here, refusing what is no signed transaction (InvalidRpcParamsError),
        # and ordered by the sender it names, as new_task would: its own decode costs
        # ~6 ms of CPU per transaction.
        raw_tx, sender = raw_transaction_sender(call.params)
        params = RawTransactionParams(raw_tx=raw_tx)
        return TaskMessage(
            operation="rpc.send_raw",
            params=params.model_dump(mode="json", by_alias=True, exclude_none=True),
            account=sender,
            request_id=request_id,
        )

    def result_of(self, data: Any) -> Any:
        # The task answers what it sent (hash, nonce, ...); JSON-RPC answers the hash alone.
        return data["tx_hash"] if isinstance(data, dict) else data


def write_routers() -> list[APIRouter]:
    return [build_router(endpoints_of("write"), run_endpoint), jsonrpc_router(WriteRpcMethods())]
