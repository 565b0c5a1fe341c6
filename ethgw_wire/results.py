"""The `data` each operation answers with, as the provider's handlers build it.

These models document the API (OpenAPI shows them in each route's envelope) and let
tests check a handler's answer; the services pass the data through as it came.
Blocks, transactions and receipts are the node's own JSON-RPC objects: their models name
the members every Ethereum node answers (quantities as 0x-hex strings, as JSON-RPC has
them) and let the others through.
"""

from __future__ import annotations

from typing import Literal

from pydantic import BaseModel, ConfigDict, Field
from pydantic.alias_generators import to_camel

from ethgw_wire.events import PlatformEvent


class Result(BaseModel):
    """Base of every result model: the keys are snake_case, as the handlers write them,
    and a key no model declares is an error (tests catch a handler that drifted)."""

    model_config = ConfigDict(extra="forbid", frozen=True, populate_by_name=True)


class ConnectResult(Result):
    connected: bool
    node: str
    peers: int


class BlockNumberResult(Result):
    block_number: int


class GasPriceResult(Result):
    gas_price: int  # wei


class CoinbaseResult(Result):
    coinbase: str


class NodeAccountsResult(Result):
    node: str
    accounts: list[str]


class AccountsResult(Result):
    accounts: list[str]


class EthBalanceResult(Result):
    address: str
    balance_wei: int


class TokenBalanceResult(Result):
    address: str
    balance: int


class TokenTotalResult(Result):
    total_supply: int


class BlockTxCountResult(Result):
    block_number: int
    count: int


class Project(Result):
    id: int
    publisher: str
    name: str
    hash: str
    time: int
    price: int


class Page(Result):
    """A page of a list: where it starts, how long it may be, how many there are, and the
    path of the next page (None on the last)."""

    total: int
    offset: int
    limit: int
    next: str | None = None


class ProjectsResult(Page):
    projects: list[Project]


class Purchase(Result):
    purchase_id: int
    buyer: str
    price: int
    time: int


class PurchasesResult(Page):
    project_id: int
    purchases: list[Purchase]


class EventRangeResult(Result):
    """The platform events of a block range, as the calling key may see them: `to_block`
    is the last block covered (`from_block - 1` when the node has not reached
    `from_block` yet), which is short of the range asked when the node's head (`head`) or
    the events per answer stop it; the next page starts at `to_block + 1`."""

    from_block: int
    to_block: int
    head: int
    events: list[PlatformEvent]


class AccountCreatedResult(Result):
    address: str
    # What the faucet sent it: less than the usual funding, or 0 and no transaction, once
    # the calling key's faucet budget is spent (ETHGW_PROVIDER_FAUCET_WEI_PER_KEY).
    funded_wei: int
    funding_tx: str | None


class UnlockResult(Result):
    address: str
    unlocked_until: float  # Unix time


class TransactionResult(Result):
    """A write's transaction: "sent" when not waited for; "mined" with its receipt's
    block, gas and (for a deploy) contract address when `wait_receipt` was asked."""

    tx_hash: str
    from_address: str = Field(alias="from")
    nonce: int
    status: Literal["sent", "mined"]
    block_number: int | None = None
    gas_used: int | None = None
    contract_address: str | None = None


class PublishResult(TransactionResult):
    project_id: int | None = None  # known once mined


class BuyResult(TransactionResult):
    purchase_id: int | None = None  # known once mined


# -- the node's own objects -----------------------------------------------------------


class NodeObject(BaseModel):
    """A JSON-RPC object as the node answered it: camelCase members, quantities as 0x-hex
    strings; members a node adds beyond the named ones pass through."""

    model_config = ConfigDict(
        extra="allow", frozen=True, alias_generator=to_camel, populate_by_name=True
    )


class Block(NodeObject):
    """A block, its transactions as hashes (eth_getBlockByNumber/Hash with full=false)."""

    number: str
    hash: str
    parent_hash: str
    timestamp: str
    miner: str
    gas_limit: str
    gas_used: str
    transactions: list[str]


class Transaction(NodeObject):
    """A transaction (eth_getTransactionByHash); block members are null while pending."""

    hash: str
    nonce: str
    block_hash: str | None
    block_number: str | None
    transaction_index: str | None
    from_address: str = Field(alias="from")
    to: str | None
    value: str
    gas: str
    input: str


class Log(NodeObject):
    address: str
    topics: list[str]
    data: str
    log_index: str


class Receipt(NodeObject):
    """A mined transaction's receipt (eth_getTransactionReceipt); status 0x1 succeeded."""

    transaction_hash: str
    block_hash: str
    block_number: str
    from_address: str = Field(alias="from")
    to: str | None
    status: str
    gas_used: str
    contract_address: str | None
    logs: list[Log]
