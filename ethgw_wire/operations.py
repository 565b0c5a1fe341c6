"""Every platform operation: its name, task class, parameter schema and signer.

The read and write services validate requests against these schemas before a
task reaches Kafka; the provider validates again (a task can come from any
producer) and dispatches on the name.
"""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass
from typing import Any

from eth_account import Account
from pydantic import BaseModel, ConfigDict, Field, ValidationInfo, field_validator
from pydantic.alias_generators import to_camel

from balancer import TaskClass
from ethgw_wire.artifacts import check_abi, constructor_data
from ethgw_wire.fields import (
    Address,
    BlockNumber,
    Bytecode,
    Hash32,
    HexData,
    Password,
    PositiveUint256,
    Uint64,
    Uint256,
)
from ethgw_wire.messages import TaskMessage

# What the JSON-RPC pass-through may ask of a node: reads only (plus
# eth_sendRawTransaction, which is a write task of its own).
RPC_READ_METHODS: tuple[str, ...] = (
    "eth_blockNumber", "eth_chainId", "eth_gasPrice", "eth_getBalance", "eth_getCode",
    "eth_getStorageAt", "eth_getTransactionCount", "eth_getBlockByNumber",
    "eth_getBlockByHash", "eth_getBlockTransactionCountByNumber",
    "eth_getBlockTransactionCountByHash", "eth_getTransactionByHash",
    "eth_getTransactionReceipt", "eth_call", "eth_estimateGas", "eth_feeHistory",
    "eth_maxPriorityFeePerGas", "eth_getLogs", "eth_syncing", "net_version",
    "net_peerCount", "net_listening", "web3_clientVersion",
)  # fmt: skip
RPC_SEND_RAW = "eth_sendRawTransaction"

# The key that orders a write: its signer. Owner-only token operations are
# signed by the platform admin and account creation spends the faucet's gas
# money, so those two are serialised under fixed keys.
ADMIN_SIGNER = "admin"
FAUCET_SIGNER = "faucet"


class Params(BaseModel):
    """Base of every parameter schema: unknown fields are an error, not ignored."""

    # The thesis's API is camelCase (projectName, gasLimit): both spellings are
    # accepted, and errors name the field as the client spelled it.
    model_config = ConfigDict(
        extra="forbid", frozen=True, alias_generator=to_camel, populate_by_name=True
    )


class NoParams(Params):
    pass


class AddressParams(Params):
    address: Address


class AmountParams(Params):
    address: Address
    value: Uint256


class BlockHashParams(Params):
    block_hash: Hash32


class BlockNumberParams(Params):
    block_number: BlockNumber


class TxHashParams(Params):
    tx_hash: Hash32


class PageParams(Params):
    offset: int = Field(default=0, ge=0)
    limit: int = Field(default=50, ge=1, le=500)


class ProjectParams(Params):
    project_id: Uint256


class CreateAccountParams(Params):
    password: Password


class UnlockParams(Params):
    address: Address
    password: Password
    duration_s: int = Field(default=300, ge=1, le=86_400)


class WriteOptions(Params):
    """What every write may ask for besides its own fields."""

    wait_receipt: bool = False


class TransferParams(WriteOptions):
    from_address: Address = Field(alias="from")
    to: Address
    value: PositiveUint256


class MintParams(WriteOptions):
    address: Address
    value: PositiveUint256


class SetBalanceParams(WriteOptions):
    address: Address
    value: Uint256


class PublishParams(WriteOptions):
    address: Address
    time: Uint64
    project_name: str = Field(min_length=1, max_length=200)
    project_hash: Hash32
    price: Uint256 | None = None


class BuyParams(WriteOptions):
    address: Address
    time: Uint64
    project_id: Uint256


class SendEtherParams(WriteOptions):
    from_address: Address = Field(alias="from")
    to: Address
    value: Uint256


class DeployParams(WriteOptions):
    abi: list[dict[str, Any]] = Field(max_length=500)
    bytecode: Bytecode
    # validate_default: an absent `args` must fit the ABI too (no arguments).
    args: list[Any] = Field(default_factory=list, max_length=32, validate_default=True)
    from_address: Address | None = Field(default=None, alias="from")
    gas_price: PositiveUint256 | None = None
    gas_limit: int | None = Field(default=None, ge=21_000, le=30_000_000)
    wait_receipt: bool = True  # a deploy answers with the contract address

    @field_validator("abi")
    @classmethod
    def _abi_is_readable(cls, abi: list[dict[str, Any]]) -> list[dict[str, Any]]:
        check_abi(abi)
        return abi

    @field_validator("args")
    @classmethod
    def _args_fit_the_abi(cls, args: list[Any], info: ValidationInfo) -> list[Any]:
        # Checked here, not only by the provider: arguments that cannot be encoded are bad
        # input, refused before they become a task.
        abi, bytecode = info.data.get("abi"), info.data.get("bytecode")
        if abi is not None and bytecode is not None:
            constructor_data(abi, bytecode, args)
        return args


class RawTransactionParams(WriteOptions):
    raw_tx: HexData


class RpcCallParams(Params):
    method: str = Field(max_length=64)
    params: list[Any] = Field(default_factory=list, max_length=16)


@dataclass(frozen=True)
class Operation:
    """One operation of the platform."""

    name: str
    task_class: TaskClass
    params: type[Params]
    # The parameter naming the signing account (orders the account's writes),
    # or a fixed signer key (ADMIN_SIGNER, FAUCET_SIGNER); None for reads.
    signer_field: str | None = None
    signer_key: str | None = None
    admin_only: bool = False

    @property
    def is_write(self) -> bool:
        return self.task_class is not TaskClass.RT

    def ordering_key(self, params: Params) -> str | None:
        """The Kafka key of a write: its signer, so one signer's writes stay in order."""
        if self.signer_key is not None:
            return self.signer_key
        if isinstance(params, RawTransactionParams):
            # A raw transaction is ordered by its sender, like any other write.
            return str(Account.recover_transaction(params.raw_tx))
        if self.signer_field is not None:
            value = getattr(params, self.signer_field)
            return None if value is None else str(value)
        return None


def _read(name: str, params: type[Params] = NoParams) -> Operation:
    return Operation(name, TaskClass.RT, params)


_OPERATIONS = [
    # reads (thesis table 4.2 and the table 5.1 mix)
    _read("conn.connect"),
    _read("chain.block_number"),
    _read("chain.gas_price"),
    _read("chain.coinbase"),
    _read("node.accounts"),
    _read("accounts.list"),
    _read("eth.balance", AddressParams),
    _read("token.balance", AddressParams),
    _read("token.total"),
    _read("block.by_hash", BlockHashParams),
    _read("block.by_number", BlockNumberParams),
    _read("block.tx_count", BlockNumberParams),
    _read("tx.by_hash", TxHashParams),
    _read("tx.receipt", TxHashParams),
    _read("projects.list", PageParams),
    _read("projects.purchases", ProjectParams),
    _read("rpc.call", RpcCallParams),
    # writes (thesis table 4.1)
    Operation(
        "contract.deploy", TaskClass.DT, DeployParams, signer_key=ADMIN_SIGNER, admin_only=True
    ),
    Operation("account.create", TaskClass.MAT, CreateAccountParams, signer_key=FAUCET_SIGNER),
    Operation("account.unlock", TaskClass.MAT, UnlockParams, signer_field="address"),
    Operation("token.add", TaskClass.MCT, MintParams, signer_key=ADMIN_SIGNER, admin_only=True),
    Operation("token.delete", TaskClass.MCT, MintParams, signer_key=ADMIN_SIGNER, admin_only=True),
    Operation(
        "token.set", TaskClass.MCT, SetBalanceParams, signer_key=ADMIN_SIGNER, admin_only=True
    ),
    Operation("token.transfer", TaskClass.MCT, TransferParams, signer_field="from_address"),
    Operation("token.publish", TaskClass.MCT, PublishParams, signer_field="address"),
    Operation("token.buy", TaskClass.MCT, BuyParams, signer_field="address"),
    Operation("eth.send", TaskClass.MCT, SendEtherParams, signer_field="from_address"),
    Operation("rpc.send_raw", TaskClass.MCT, RawTransactionParams),
]

OPERATIONS: dict[str, Operation] = {op.name: op for op in _OPERATIONS}


class UnknownOperationError(KeyError):
    """A task names an operation the platform does not have."""


def get_operation(name: str) -> Operation:
    try:
        return OPERATIONS[name]
    except KeyError:
        raise UnknownOperationError(name) from None


def new_task(name: str, params: Mapping[str, Any], request_id: str | None = None) -> TaskMessage:
    """A validated task with its ordering key; raises UnknownOperationError or
    pydantic's ValidationError (whose locations name the bad fields)."""
    operation = get_operation(name)
    validated = operation.params.model_validate(dict(params))
    return TaskMessage(
        operation=name,
        params=validated.model_dump(mode="json", by_alias=True, exclude_none=True),
        account=operation.ordering_key(validated),
        request_id=request_id,
    )
