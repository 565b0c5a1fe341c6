"""A node client over a chain kept in memory: what the sender and the handlers ask of
a node, for unit tests of the logic above it (the real client has tests of its own)."""

from __future__ import annotations

from collections.abc import Sequence
from typing import Any

from eth_account import Account
from eth_utils.crypto import keccak

from ethgw_wire.artifacts import ContractArtifact
from ethgw_wire.errors import NodeRefusedError, TaskError
from provider.chain import NodeClient

CHAIN_ID = 1337
GAS_PRICE_WEI = 10**9
ESTIMATE = 60_000


class FakeNode(NodeClient):
    """Takes signed transactions into a pool; `refusals` are raised by the next sends."""

    def __init__(self, name: str = "node-1") -> None:
        self.name = name
        self.url = f"http://{name}"
        self.received: list[str] = []  # raw transactions broadcast here, in order
        self.pool: dict[str, str] = {}  # tx hash -> raw transaction
        self.refusals: list[TaskError] = []

    async def request(self, method: str, params: Sequence[Any]) -> Any:
        if method == "eth_sendRawTransaction":
            return self._take(params[0])
        if method == "eth_getTransactionCount":
            return hex(self.pending_count(params[0]))
        if method == "eth_getTransactionByHash":
            return {"hash": params[0]} if params[0] in self.pool else None
        answers = {"eth_chainId": hex(CHAIN_ID), "eth_gasPrice": hex(GAS_PRICE_WEI)}
        if method in answers:
            return answers[method]
        raise NodeRefusedError(f"{method}: the method does not exist")

    async def estimate_gas(
        self, tx: dict[str, Any], abi: Sequence[dict[str, Any]] | None = None
    ) -> int:
        return ESTIMATE

    async def call_function(
        self,
        contract: ContractArtifact,
        address: str,
        function: str,
        args: Sequence[Any],
        block: int | None = None,
    ) -> Any:
        raise NodeRefusedError("eth_call: no contract on this fake")

    async def event_args(
        self, contract: ContractArtifact, address: str, tx_hash: str, event: str
    ) -> list[dict[str, Any]]:
        return []

    def pending_count(self, sender: str) -> int:
        return sum(1 for raw in self.pool.values() if _sender(raw) == sender)

    def _take(self, raw_tx: str) -> str:
        if self.refusals:
            raise self.refusals.pop(0)
        tx_hash = "0x" + keccak(bytes.fromhex(raw_tx.removeprefix("0x"))).hex()
        self.received.append(raw_tx)
        self.pool[tx_hash] = raw_tx
        return tx_hash


def _sender(raw_tx: str) -> str:
    return str(Account.recover_transaction(raw_tx))
