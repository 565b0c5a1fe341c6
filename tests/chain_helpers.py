"""Helpers for tests on the real chain: connect, sign locally, send, wait for the
receipt, deploy a compiled contract, fund accounts, read a custom-error revert."""

from __future__ import annotations

import asyncio
from collections.abc import Iterable, Sequence
from typing import Any

from eth_abi.abi import encode
from eth_account import Account
from eth_account.signers.local import LocalAccount
from eth_typing import ChecksumAddress
from hexbytes import HexBytes
from web3 import AsyncHTTPProvider, AsyncWeb3
from web3.contract import AsyncContract
from web3.contract.async_contract import AsyncContractFunction
from web3.exceptions import ContractCustomError, TransactionNotFound, Web3RPCError
from web3.types import TxParams, TxReceipt

from ethgw_wire.artifacts import ContractArtifact, DecodedError, decode_custom_error

GWEI = 10**9
ETHER = 10**18
# Legacy gas price: the sealer's minimum tip is 1 gwei, London's base fee stays far below.
GAS_PRICE = 2 * GWEI
RECEIPT_TIMEOUT_S = 60.0
RECEIPT_POLL_S = 0.1
# Estimates are exact for the state they saw; a little room for the state at inclusion.
GAS_MARGIN = 1.25
TRANSFER_GAS = 21_000

# The web3 client type these helpers take (what `connect` returns).
ChainClient = AsyncWeb3[AsyncHTTPProvider]


class TransactionFailedError(AssertionError):
    """A transaction was mined with status 0 where success was expected."""

    def __init__(self, receipt: TxReceipt) -> None:
        super().__init__(
            f"transaction {receipt['transactionHash'].to_0x_hex()} failed "
            f"(block {receipt['blockNumber']}, gas used {receipt['gasUsed']})"
        )
        self.receipt = receipt


def connect(rpc_url: str) -> ChainClient:
    """A web3 client of one node; close it with `await w3.provider.disconnect()`."""
    return AsyncWeb3(AsyncHTTPProvider(rpc_url, request_kwargs={"timeout": 10}))


async def wait_for_receipt(
    w3: ChainClient, tx_hash: HexBytes, timeout_s: float = RECEIPT_TIMEOUT_S
) -> TxReceipt:
    """The receipt of a transaction once mined; "transaction indexing is in progress"
    (a node still building its index) counts as not mined yet."""
    deadline = asyncio.get_running_loop().time() + timeout_s
    while True:
        try:
            return await w3.eth.get_transaction_receipt(tx_hash)
        except TransactionNotFound:
            pass
        except Web3RPCError as exc:
            if "indexing is in progress" not in str(exc):
                raise
        if asyncio.get_running_loop().time() > deadline:
            raise TimeoutError(f"no receipt for {tx_hash.to_0x_hex()} after {timeout_s} s")
        await asyncio.sleep(RECEIPT_POLL_S)


class Signer:
    """An account that signs locally and numbers its own transactions, so many can
    be in flight at once (nonces are taken in send order under a lock)."""

    def __init__(self, w3: ChainClient, private_key: bytes, chain_id: int) -> None:
        self.w3 = w3
        self.chain_id = chain_id
        self._account: LocalAccount = Account.from_key(private_key)
        self._next_nonce: int | None = None
        self._lock = asyncio.Lock()

    @classmethod
    def random(cls, w3: ChainClient, chain_id: int) -> Signer:
        return cls(w3, bytes(Account.create().key), chain_id)

    @property
    def address(self) -> ChecksumAddress:
        return self._account.address

    async def send(
        self,
        *,
        to: str | None = None,
        data: str = "0x",
        value: int = 0,
        gas: int | None = None,
    ) -> HexBytes:
        """Sign and broadcast; gas is estimated (with a margin) when not given."""
        tx: dict[str, Any] = {
            "from": self.address,
            "data": data,
            "value": value,
            "gasPrice": GAS_PRICE,
            "chainId": self.chain_id,
        }
        if to is not None:
            tx["to"] = to
        if gas is None:
            estimate = await self.w3.eth.estimate_gas(TxParams(**tx))  # type: ignore[typeddict-item]
            gas = int(estimate * GAS_MARGIN)
        tx["gas"] = gas
        del tx["from"]
        async with self._lock:
            if self._next_nonce is None:
                self._next_nonce = await self.w3.eth.get_transaction_count(self.address, "pending")
            tx["nonce"] = self._next_nonce
            signed = self._account.sign_transaction(tx)
            try:
                tx_hash = await self.w3.eth.send_raw_transaction(signed.raw_transaction)
            except Exception:
                self._next_nonce = None  # resync from the chain on the next send
                raise
            self._next_nonce += 1
        return tx_hash

    async def transact(
        self,
        *,
        to: str | None = None,
        data: str = "0x",
        value: int = 0,
        gas: int | None = None,
        expect_success: bool = True,
    ) -> TxReceipt:
        """Send and wait for the receipt; a failed transaction raises unless told not to."""
        tx_hash = await self.send(to=to, data=data, value=value, gas=gas)
        receipt = await wait_for_receipt(self.w3, tx_hash)
        if expect_success and receipt["status"] != 1:
            raise TransactionFailedError(receipt)
        return receipt

    async def submit(self, function: AsyncContractFunction, *, gas: int | None = None) -> HexBytes:
        """Send a contract function as a transaction; its hash, without waiting."""
        return await self.send(to=function.address, data=function_data(function), gas=gas)

    async def execute(
        self,
        function: AsyncContractFunction,
        *,
        gas: int | None = None,
        expect_success: bool = True,
    ) -> TxReceipt:
        """Run a contract function as a transaction and wait for its receipt."""
        return await self.transact(
            to=function.address,
            data=function_data(function),
            gas=gas,
            expect_success=expect_success,
        )


def function_data(function: AsyncContractFunction) -> str:
    """The calldata of a bound contract function: selector and ABI-encoded arguments."""
    return function.selector + encode(list(function.argument_types), list(function.arguments)).hex()


def constructor_data(artifact: ContractArtifact, args: Sequence[Any]) -> str:
    """Creation bytecode followed by the ABI-encoded constructor arguments."""
    constructors = [item for item in artifact.abi if item["type"] == "constructor"]
    types = [i["type"] for i in constructors[0]["inputs"]] if constructors else []
    if len(types) != len(args):
        raise ValueError(f"{artifact.contract_name} takes {len(types)} constructor arguments")
    return artifact.bytecode + encode(types, list(args)).hex()


async def deploy(
    signer: Signer, artifact: ContractArtifact, *args: Any
) -> tuple[AsyncContract, TxReceipt]:
    """Deploy a compiled contract and wait for it; the contract bound to its address."""
    receipt = await signer.transact(data=constructor_data(artifact, args))
    address = receipt["contractAddress"]
    assert address is not None
    return signer.w3.eth.contract(address=address, abi=artifact.web3_abi), receipt


async def fund(signer: Signer, addresses: Iterable[str], wei: int) -> list[TxReceipt]:
    """Send `wei` to every address, all in flight at once."""
    hashes = await asyncio.gather(
        *(signer.send(to=a, value=wei, gas=TRANSFER_GAS) for a in addresses)
    )
    return await wait_for_all(signer.w3, hashes)


async def wait_for_all(w3: ChainClient, hashes: Iterable[HexBytes]) -> list[TxReceipt]:
    """The receipts of many transactions; any failed one raises."""
    receipts = await asyncio.gather(*(wait_for_receipt(w3, h) for h in hashes))
    for receipt in receipts:
        if receipt["status"] != 1:
            raise TransactionFailedError(receipt)
    return list(receipts)


async def revert_error(
    function: AsyncContractFunction, sender: str, abi: Sequence[dict[str, Any]]
) -> DecodedError:
    """The custom error a call of `function` from `sender` reverts with (eth_call,
    nothing mined); fails the test when it does not revert with one of `abi`'s."""
    try:
        await function.call({"from": sender})
    except ContractCustomError as exc:
        data = exc.data if isinstance(exc.data, str) else None
        decoded = decode_custom_error(abi, data) if data else None
        if decoded is None:
            raise AssertionError(f"reverted with unknown data {exc.data!r}") from None
        return decoded
    raise AssertionError(f"{function.abi_element_identifier} did not revert")
