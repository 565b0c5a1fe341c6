"""The receipt wait of tests/chain_helpers.py against a scripted node (no chain)."""

from __future__ import annotations

from typing import Any

import pytest
from hexbytes import HexBytes
from web3.exceptions import TransactionNotFound, Web3RPCError

from tests.chain_helpers import wait_for_receipt

TX_HASH = HexBytes("0x" + "ab" * 32)


class _ScriptedEth:
    """Answers get_transaction_receipt from a script: exceptions are raised in turn."""

    def __init__(self, *answers: Any) -> None:
        self.answers = list(answers)
        self.calls = 0

    async def get_transaction_receipt(self, tx_hash: HexBytes) -> Any:
        self.calls += 1
        answer = self.answers.pop(0)
        if isinstance(answer, Exception):
            raise answer
        return answer


class _ScriptedWeb3:
    def __init__(self, eth: _ScriptedEth) -> None:
        self.eth = eth


async def test_indexing_in_progress_means_keep_polling() -> None:
    """ "transaction indexing is in progress" and "not found" are waited out."""
    eth = _ScriptedEth(
        Web3RPCError("transaction indexing is in progress"),
        TransactionNotFound("not yet"),
        {"status": 1},
    )
    receipt = await wait_for_receipt(_ScriptedWeb3(eth), TX_HASH)  # type: ignore[arg-type]
    assert receipt["status"] == 1
    assert eth.calls == 3


async def test_other_rpc_errors_are_raised() -> None:
    """Any other JSON-RPC error ends the wait at once."""
    eth = _ScriptedEth(Web3RPCError("invalid argument 0: hex string has length 2"))
    with pytest.raises(Web3RPCError, match="invalid argument"):
        await wait_for_receipt(_ScriptedWeb3(eth), TX_HASH)  # type: ignore[arg-type]


async def test_no_receipt_in_time_raises_timeout() -> None:
    """A transaction never mined ends in TimeoutError naming its hash."""
    eth = _ScriptedEth(*[TransactionNotFound("not yet")] * 100)
    with pytest.raises(TimeoutError, match=TX_HASH.to_0x_hex()):
        await wait_for_receipt(_ScriptedWeb3(eth), TX_HASH, timeout_s=0.2)  # type: ignore[arg-type]
