"""Every platform operation, declared once: name, route, parameters, result, task
class, signer and the errors it may answer.

The services build their routes (and OpenAPI) from these declarations and validate
requests against the parameter schemas before a task reaches Kafka; the topic follows
from the task class. The provider validates again (a task can come from any producer)
and dispatches to the handler named after the operation.
"""

from __future__ import annotations

import re
from collections.abc import Mapping
from dataclasses import dataclass
from typing import Any, Literal

from eth_account import Account
from pydantic import BaseModel, ConfigDict, Field, ValidationInfo, field_validator
from pydantic.alias_generators import to_camel

from balancer import TaskClass
from ethgw_wire.artifacts import check_abi, constructor_data
from ethgw_wire.errors import (
    COMMON_ERRORS,
    AccountLockedError,
    AccountQuotaError,
    InsufficientFundsError,
    MethodNotAllowedError,
    NodeBehindError,
    NotAccountOwnerError,
    NotFoundError,
    PlatformNotReadyError,
    ReceiptTimeoutError,
    ResultTooLargeError,
    RevertedError,
    TaskError,
    UnknownAccountError,
    UnlockThrottledError,
    WrongPasswordError,
)
from ethgw_wire.fields import (
    SECRET,
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
from ethgw_wire.results import (
    AccountCreatedResult,
    AccountsResult,
    Block,
    BlockNumberResult,
    BlockTxCountResult,
    BuyResult,
    CoinbaseResult,
    ConnectResult,
    EthBalanceResult,
    EventRangeResult,
    GasPriceResult,
    NodeAccountsResult,
    ProjectsResult,
    PublishResult,
    PurchasesResult,
    Receipt,
    TokenBalanceResult,
    TokenTotalResult,
    Transaction,
    TransactionResult,
    UnlockResult,
)
from ethgw_wire.rpc_params import LOGS_MAX_BLOCKS

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
# Reads whose cost the caller chooses (gas, a block range, a block count): the gateway
# bounds how many of them one key runs at once.
RPC_HEAVY_METHODS: tuple[str, ...] = (
    "eth_call", "eth_estimateGas", "eth_getLogs", "eth_feeHistory",
)  # fmt: skip

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


class BlockHashParams(Params):
    block_hash: Hash32


class BlockNumberParams(Params):
    block_number: BlockNumber


class TxHashParams(Params):
    tx_hash: Hash32


class PageParams(Params):
    offset: int = Field(default=0, ge=0, le=2**63 - 1)
    limit: int = Field(default=50, ge=1, le=500)


class PurchasesParams(PageParams):
    project_id: Uint256


class EventRangeParams(Params):
    """A block range of platform events: at most LOGS_MAX_BLOCKS blocks; no `toBlock`, up
    to the head (within the same span)."""

    from_block: BlockNumber
    to_block: BlockNumber | None = None

    @field_validator("to_block")
    @classmethod
    def _range_within_the_cap(cls, to_block: int | None, info: ValidationInfo) -> int | None:
        from_block = info.data.get("from_block")
        if to_block is None or from_block is None:
            return to_block
        if to_block < from_block:
            raise ValueError(f"is before fromBlock ({from_block})")
        if to_block - from_block + 1 > LOGS_MAX_BLOCKS:
            raise ValueError(f"spans more than {LOGS_MAX_BLOCKS} blocks from fromBlock")
        return to_block

    @property
    def last_block(self) -> int:
        """The last block the range may cover, the head aside."""
        cap = self.from_block + LOGS_MAX_BLOCKS - 1
        return cap if self.to_block is None else min(self.to_block, cap)


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


class BurnParams(MintParams):
    """Burning names the account and the amount, as minting does."""


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


Service = Literal["read", "write"]

# A parameter carried in a route's path, e.g. /projects/{projectId}/purchases, or with a
# Starlette convertor that tells two routes of one shape apart: /blocks/{blockNumber:uint}.
_PATH_PARAM = re.compile(r"\{(\w+)(?::\w+)?\}")


def path_param_of(path: str | None) -> str | None:
    """The parameter a route's path carries, if it has one."""
    found = _PATH_PARAM.search(path or "")
    return None if found is None else found.group(1)


@dataclass(frozen=True)
class Operation:
    """One operation of the platform, declared once: the routes, the Kafka topic,
    OpenAPI, the provider's dispatch and the statuses of its errors derive from it."""

    name: str
    summary: str
    task_class: TaskClass
    params: type[Params]
    # The `data` it answers: a pydantic model, or dict[str, Any] / Any for the node's
    # own objects (a block, a transaction, a receipt, a JSON-RPC result).
    result: Any
    # The REST route under the API prefix (the thesis's path); None: JSON-RPC only.
    path: str | None
    # Resource-style routes of the same operation (e.g. /transactions/{txHash}); when an
    # operation has some, its thesis path stays and is marked deprecated.
    aliases: tuple[str, ...] = ()
    # The parameter naming the signing account (orders the account's writes),
    # or a fixed signer key (ADMIN_SIGNER, FAUCET_SIGNER); None for reads.
    signer_field: str | None = None
    signer_key: str | None = None
    admin_only: bool = False
    # The failures it may answer besides COMMON_ERRORS.
    errors: tuple[type[TaskError], ...] = ()

    @property
    def is_write(self) -> bool:
        return self.task_class is not TaskClass.RT

    @property
    def service(self) -> Service:
        """Which service takes it, and so which Kafka topic carries it."""
        return "write" if self.is_write else "read"

    @property
    def method(self) -> Literal["GET", "POST"]:
        """Reads are GETs with query parameters; writes are POSTs with a JSON body."""
        return "POST" if self.is_write else "GET"

    @property
    def path_param(self) -> str | None:
        """The parameter carried in the path, if the path has one."""
        return path_param_of(self.path)

    @property
    def handler_name(self) -> str:
        """The provider's method that executes it: the name with dots as underscores."""
        return self.name.replace(".", "_")

    @property
    def answerable_errors(self) -> tuple[type[TaskError], ...]:
        return COMMON_ERRORS + self.errors

    @property
    def secret_params(self) -> tuple[str, ...]:
        """The parameters (as a task spells them) that are sealed on Kafka: the SECRET ones."""
        return tuple(
            info.alias or name
            for name, info in self.params.model_fields.items()
            if SECRET in info.metadata
        )

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


def _read(
    name: str,
    path: str | None,
    summary: str,
    result: Any,
    params: type[Params] = NoParams,
    errors: tuple[type[TaskError], ...] = (),
    aliases: tuple[str, ...] = (),
) -> Operation:
    return Operation(
        name, summary, TaskClass.RT, params, result, path, aliases=aliases, errors=errors
    )


# What the reads of the token contract may answer; blocks and transactions may be absent.
_TOKEN_READ = (PlatformNotReadyError, RevertedError)
_LOOKUP = (NotFoundError,)
# What a signed transaction may answer: the signer's owner and state, the node's refusal,
# the wait.
_SIGNED = (
    NotAccountOwnerError,
    UnknownAccountError,
    AccountLockedError,
    RevertedError,
    InsufficientFundsError,
    ReceiptTimeoutError,
)
# A call of the platform token: also needs the token, and a node that sees its code.
_TOKEN_CALL = (*_SIGNED, PlatformNotReadyError, NodeBehindError)

_OPERATIONS = [
    # reads (thesis table 4.2 and the table 5.1 mix)
    _read("conn.connect", "/conn/connect", "Connectivity of a node", ConnectResult),
    _read("chain.block_number", "/conn/blockNum", "Chain height", BlockNumberResult),
    _read("chain.gas_price", "/conn/gasPrice", "Current gas price (wei)", GasPriceResult),
    _read("chain.coinbase", "/conn/coinbase", "The main (coinbase) account", CoinbaseResult),
    _read("node.accounts", "/conn/accounts", "The node's own accounts", NodeAccountsResult),
    _read(
        "accounts.list",
        "/admin/list",
        "The platform accounts of the calling key (an admin key: every one)",
        AccountsResult,
        aliases=("/accounts",),
    ),
    _read(
        "eth.balance",
        "/eth/balance",
        "An account's ether balance (wei)",
        EthBalanceResult,
        AddressParams,
    ),
    _read(
        "token.balance",
        "/token/balance",
        "An account's platform tokens",
        TokenBalanceResult,
        AddressParams,
        _TOKEN_READ,
    ),
    _read(
        "token.total", "/token/total", "Total token supply", TokenTotalResult, errors=_TOKEN_READ
    ),
    _read(
        "block.by_hash",
        "/tx/blockhash",
        "A block by its hash",
        Block,
        BlockHashParams,
        _LOOKUP,
        aliases=("/blocks/{blockHash:hash32}",),
    ),
    _read(
        "block.by_number",
        "/tx/blocknumber",
        "A block by its number",
        Block,
        BlockNumberParams,
        _LOOKUP,
        aliases=("/blocks/{blockNumber:uint}",),
    ),
    _read(
        "block.tx_count",
        "/tx/txNum",
        "Number of transactions in a block",
        BlockTxCountResult,
        BlockNumberParams,
        _LOOKUP,
        aliases=("/blocks/{blockNumber:uint}/transactionCount",),
    ),
    _read(
        "tx.by_hash",
        "/tx/txhash",
        "A transaction by its hash",
        Transaction,
        TxHashParams,
        _LOOKUP,
        aliases=("/transactions/{txHash}",),
    ),
    _read(
        "tx.receipt",
        "/tx/receipt",
        "A transaction's receipt",
        Receipt,
        TxHashParams,
        _LOOKUP,
        aliases=("/transactions/{txHash}/receipt",),
    ),
    _read(
        "projects.list",
        "/projects",
        "Published projects, paged",
        ProjectsResult,
        PageParams,
        _TOKEN_READ,
    ),
    _read(
        "projects.purchases",
        "/projects/{projectId}/purchases",
        "The purchases of a project, paged",
        PurchasesResult,
        PurchasesParams,
        _TOKEN_READ,
    ),
    _read(
        "events.range",
        "/events/range",
        "The platform events of a block range, as the calling key may see them (one page"
        " of GET /api/v1/events)",
        EventRangeResult,
        EventRangeParams,
        _TOKEN_READ,
    ),
    _read(
        "rpc.call",
        None,
        "A JSON-RPC read passed through to a node",
        Any,
        RpcCallParams,
        (MethodNotAllowedError, ResultTooLargeError),
    ),
    # writes (thesis table 4.1)
    Operation(
        "contract.deploy",
        "Deploy a contract (admin)",
        TaskClass.DT,
        DeployParams,
        TransactionResult,
        "/contract/deploy",
        signer_key=ADMIN_SIGNER,
        admin_only=True,
        errors=_SIGNED,
    ),
    Operation(
        "account.create",
        "Create an account",
        TaskClass.MAT,
        CreateAccountParams,
        AccountCreatedResult,
        "/admin/new",
        aliases=("/accounts",),
        signer_key=FAUCET_SIGNER,
        errors=(AccountQuotaError, InsufficientFundsError, ReceiptTimeoutError),
    ),
    Operation(
        "account.unlock",
        "Unlock an account for a while",
        TaskClass.MAT,
        UnlockParams,
        UnlockResult,
        "/admin/unlock",
        aliases=("/accounts/{address}/unlock",),
        signer_field="address",
        errors=(
            NotAccountOwnerError,
            UnlockThrottledError,
            UnknownAccountError,
            WrongPasswordError,
        ),
    ),
    Operation(
        "token.mint",
        "Mint tokens to an account (admin)",
        TaskClass.MCT,
        MintParams,
        TransactionResult,
        "/token/add",
        signer_key=ADMIN_SIGNER,
        admin_only=True,
        errors=_TOKEN_CALL,
    ),
    Operation(
        "token.burn",
        "Burn tokens of an account (admin)",
        TaskClass.MCT,
        BurnParams,
        TransactionResult,
        "/token/delete",
        signer_key=ADMIN_SIGNER,
        admin_only=True,
        errors=_TOKEN_CALL,
    ),
    Operation(
        "token.set",
        "Set an account's token balance (admin)",
        TaskClass.MCT,
        SetBalanceParams,
        TransactionResult,
        "/token/set",
        signer_key=ADMIN_SIGNER,
        admin_only=True,
        errors=_TOKEN_CALL,
    ),
    Operation(
        "token.transfer",
        "Move tokens between accounts",
        TaskClass.MCT,
        TransferParams,
        TransactionResult,
        "/token/transfer",
        signer_field="from_address",
        errors=_TOKEN_CALL,
    ),
    Operation(
        "token.publish",
        "Publish a project (rewarded)",
        TaskClass.MCT,
        PublishParams,
        PublishResult,
        "/token/publish",
        signer_field="address",
        errors=_TOKEN_CALL,
    ),
    Operation(
        "token.buy",
        "Buy a project with tokens",
        TaskClass.MCT,
        BuyParams,
        BuyResult,
        "/token",
        signer_field="address",
        errors=_TOKEN_CALL,
    ),
    Operation(
        "eth.send",
        "Send ether",
        TaskClass.MCT,
        SendEtherParams,
        TransactionResult,
        "/tx/send",
        aliases=("/transactions",),
        signer_field="from_address",
        errors=_SIGNED,
    ),
    Operation(
        "rpc.send_raw",
        "A signed transaction passed through to a node (JSON-RPC)",
        TaskClass.MCT,
        RawTransactionParams,
        TransactionResult,
        None,
        errors=(RevertedError, InsufficientFundsError, ReceiptTimeoutError),
    ),
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
