"""What each platform operation does on the node the scheduler chose."""

from __future__ import annotations

import asyncio
import functools
from collections.abc import Awaitable, Callable
from dataclasses import dataclass
from pathlib import Path
from typing import Any, TypeVar

from eth_utils.address import to_checksum_address
from web3 import Web3
from web3.contract import Contract

from ethgw_wire.artifacts import ContractArtifact, constructor_data
from ethgw_wire.callers import Caller
from ethgw_wire.errors import (
    MethodNotAllowedError,
    NodeBehindError,
    NotFoundError,
    PlatformNotReadyError,
    TaskError,
)
from ethgw_wire.events import (
    EVENT_TOPICS,
    EVERYTHING,
    Viewer,
    decode_logs,
    event_json,
    page_end,
    visible_to,
)
from ethgw_wire.http_api import API_PREFIX
from ethgw_wire.operations import (
    ADMIN_SIGNER,
    FAUCET_SIGNER,
    OPERATIONS,
    AddressParams,
    BlockHashParams,
    BlockNumberParams,
    BurnParams,
    BuyParams,
    CreateAccountParams,
    DeployParams,
    EventRangeParams,
    MintParams,
    Operation,
    PageParams,
    Params,
    PublishParams,
    PurchasesParams,
    RawTransactionParams,
    RpcCallParams,
    SendEtherParams,
    SetBalanceParams,
    TransferParams,
    TxHashParams,
    UnlockParams,
    WriteOptions,
)
from ethgw_wire.platform_record import PlatformRecord, load_platform
from provider.accounts import AccountBook
from provider.chain import IndexingError, NodeClient, to_json
from provider.clique import sealer_of
from provider.transactions import (
    Sent,
    TransactionSender,
    receipt_summary,
    step_key,
)

ADMIN = ADMIN_SIGNER
FAUCET = FAUCET_SIGNER


def _no_release() -> None:
    """A job run outside a dispatcher has no in-flight count to release."""


@dataclass(frozen=True)
class Job:
    """One task as a handler sees it: validated parameters and the chosen node.

    `node_done` is called when the node's share of the work is over and only the chain is
    awaited (a receipt), or when the work is the provider's own (an account's key derived
    with scrypt): the task then stops counting as in flight on its node and gives back its
    execution slot, since a strategy that balances on in-flight counts would otherwise take a
    node waiting for the next block, or idle, for a busy one.
    """

    task_id: str
    params: Params
    node: NodeClient
    node_id: str
    caller: Caller | None = None  # the API key it runs for; None: the platform
    node_done: Callable[[], None] = _no_release


Handler = Callable[[Job], Awaitable[Any]]
P = TypeVar("P", bound=Params)


class Handlers:
    """One method per operation of ethgw_wire.operations, named after it."""

    def __init__(
        self,
        accounts: AccountBook,
        sender: TransactionSender,
        token: ContractArtifact,
        platform_file: Path,
        receipt_timeout_s: float,
        funding_wei: int,
        rpc_read_methods: tuple[str, ...],
    ) -> None:
        self._accounts = accounts
        self._sender = sender
        self._token = token
        self._platform_file = platform_file
        self._receipt_timeout_s = receipt_timeout_s
        self._funding_wei = funding_wei
        self._rpc_read_methods = frozenset(rpc_read_methods)
        self._platform: PlatformRecord | None = None
        self._encoder: Contract | None = None
        # Each operation runs the method named after it (Operation.handler_name), behind
        # the owner check of the account it signs with.
        self.table: dict[str, Handler] = {
            name: self._owner_checked(operation, getattr(self, operation.handler_name))
            for name, operation in OPERATIONS.items()
        }

    def _owner_checked(self, operation: Operation, handler: Handler) -> Handler:
        """The handler, refusing first (before any scrypt run or node call) a caller that
        does not own the account the operation names as its signer."""
        field = operation.signer_field
        if field is None:
            return handler
        spelled = operation.params.model_fields[field].alias or field

        @functools.wraps(handler)
        async def checked(job: Job) -> Any:
            signer = getattr(job.params, field)
            if signer is not None:
                self._accounts.check_use(str(signer), job.caller, spelled)
            return await handler(job)

        return checked

    # -- helpers ---------------------------------------------------------------------

    def platform(self) -> PlatformRecord:
        if self._platform is None:
            self._platform = load_platform(self._platform_file)
        if self._platform is None:
            raise PlatformNotReadyError("the platform token is not deployed yet")
        return self._platform

    def _token_encoder(self) -> Contract:
        """The token contract for encoding calls, built once: building it parses the
        whole ABI, which is on every token call's path. Encoding needs no node."""
        if self._encoder is None:
            address = to_checksum_address(self.platform().token_address)
            self._encoder = Web3().eth.contract(address=address, abi=self._token.web3_abi)
        return self._encoder

    async def _view(self, job: Job, function: str, *args: Any, block: int | None = None) -> Any:
        address = self.platform().token_address
        return await job.node.call_function(self._token, address, function, args, block)

    async def _head(self, job: Job) -> int:
        """The node's head, so several calls of one operation read the same block."""
        return int(await job.node.request("eth_blockNumber", []), 16)

    async def _write(
        self, job: Job, signer: str, tx: dict[str, Any], abi: list[dict[str, Any]] | None = None
    ) -> dict[str, Any]:
        sent = await self._sender.send(job.node, job.task_id, signer, tx, abi or self._token.abi)
        return await self._answer(job, sent)

    async def _answer(self, job: Job, sent: Sent) -> dict[str, Any]:
        params = job.params
        if isinstance(params, WriteOptions) and params.wait_receipt:
            receipt = await self._mined(job, sent.tx_hash)
            return {**receipt_summary(receipt), "from": sent.sender, "nonce": sent.nonce}
        return {"tx_hash": sent.tx_hash, "from": sent.sender, "nonce": sent.nonce, "status": "sent"}

    async def _mined(self, job: Job, tx_hash: str) -> Any:
        """The receipt of a transaction the job sent; the node's work ended with the send."""
        job.node_done()
        return await job.node.receipt(tx_hash, self._receipt_timeout_s)

    async def _token_call(self, job: Job, signer: str, function: str, *args: Any) -> dict[str, Any]:
        data = self._token_encoder().encode_abi(function, args=list(args))
        return await self._write(job, signer, {"to": self.platform().token_address, "data": data})

    async def _event_arg(self, job: Job, tx_hash: str, event: str, arg: str) -> Any:
        address = self.platform().token_address
        logs = await job.node.event_args(self._token, address, tx_hash, event)
        return logs[0][arg] if logs else None

    # -- reads ---------------------------------------------------------------------

    async def conn_connect(self, job: Job) -> dict[str, Any]:
        peers = int(await job.node.request("net_peerCount", []), 16)
        return {"connected": True, "node": job.node_id, "peers": peers}

    # The simplest reads go as raw JSON-RPC: web3.py's formatters and middlewares cost
    # more than the node's own answer (docs/benchmarks.md, the read micro-benchmark).
    async def chain_block_number(self, job: Job) -> dict[str, Any]:
        return {"block_number": int(await job.node.request("eth_blockNumber", []), 16)}

    async def chain_gas_price(self, job: Job) -> dict[str, Any]:
        return {"gas_price": int(await job.node.request("eth_gasPrice", []), 16)}

    async def chain_coinbase(self, job: Job) -> dict[str, Any]:
        # Service nodes do not seal, so they have no etherbase: the chain's coinbase is
        # its Clique signer, recovered from the seal of the node's latest block.
        block = await job.node.request("eth_getBlockByNumber", ["latest", False])
        return {"coinbase": sealer_of(block)}

    async def node_accounts(self, job: Job) -> dict[str, Any]:
        return {"node": job.node_id, "accounts": await job.node.request("eth_accounts", [])}

    async def accounts_list(self, job: Job) -> dict[str, Any]:
        return {"accounts": self._accounts.addresses(job.caller)}

    async def eth_balance(self, job: Job) -> dict[str, Any]:
        params = _as(job, AddressParams)
        balance = await job.node.request("eth_getBalance", [params.address, "latest"])
        return {"address": params.address, "balance_wei": int(balance, 16)}

    async def token_balance(self, job: Job) -> dict[str, Any]:
        params = _as(job, AddressParams)
        return {
            "address": params.address,
            "balance": int(await self._view(job, "balanceOf", params.address)),
        }

    async def token_total(self, job: Job) -> dict[str, Any]:
        return {"total_supply": int(await self._view(job, "totalSupply"))}

    async def block_by_hash(self, job: Job) -> Any:
        params = _as(job, BlockHashParams)
        return _found(
            await job.node.request("eth_getBlockByHash", [params.block_hash, False]),
            f"no block with hash {params.block_hash}",
        )

    async def block_by_number(self, job: Job) -> Any:
        params = _as(job, BlockNumberParams)
        block = await job.node.request("eth_getBlockByNumber", [hex(params.block_number), False])
        return _found(block, f"no block {params.block_number} yet")

    async def block_tx_count(self, job: Job) -> dict[str, Any]:
        params = _as(job, BlockNumberParams)
        count = await job.node.request(
            "eth_getBlockTransactionCountByNumber", [hex(params.block_number)]
        )
        count = _found(count, f"no block {params.block_number} yet")
        return {"block_number": params.block_number, "count": int(count, 16)}

    async def tx_by_hash(self, job: Job) -> Any:
        params = _as(job, TxHashParams)
        tx = await job.node.request("eth_getTransactionByHash", [params.tx_hash])
        if tx is None and self._sender.has_signed(params.tx_hash):
            # Sent through another node and not gossiped here yet: the next node may have it.
            raise NodeBehindError(f"{job.node_id} has not seen {params.tx_hash} yet")
        return _found(tx, f"no transaction {params.tx_hash}")

    async def tx_receipt(self, job: Job) -> Any:
        params = _as(job, TxHashParams)
        for _ in range(20):
            try:
                receipt = await job.node.request("eth_getTransactionReceipt", [params.tx_hash])
                return _found(receipt, f"no receipt for {params.tx_hash} (not mined or unknown)")
            except IndexingError:
                await asyncio.sleep(0.25)
        raise TaskError("the node is still indexing transactions; try again")

    async def _views(
        self, job: Job, calls: list[tuple[str, tuple[Any, ...]]], block: int
    ) -> list[Any]:
        """Several view calls of the token in one JSON-RPC batch, at one block."""
        address = self.platform().token_address
        return await job.node.call_functions(self._token, address, calls, block)

    # A page reads the count, then the rows: both at one block, so a row published between
    # the two calls cannot make the page disagree with its total.
    async def projects_list(self, job: Job) -> dict[str, Any]:
        params = _as(job, PageParams)
        head = await self._head(job)
        count = int(await self._view(job, "projectCount", block=head))
        ids = range(params.offset + 1, min(count, params.offset + params.limit) + 1)
        rows = await self._views(job, [("projects", (i,)) for i in ids], head)
        projects = [
            {
                "id": i,
                "publisher": r[0],
                "name": r[1],
                "hash": "0x" + bytes(r[2]).hex(),
                "time": int(r[3]),
                "price": int(r[4]),
            }
            for i, r in zip(ids, rows, strict=True)
        ]
        page = _page("/projects", params, count)
        return {**page, "projects": projects}

    async def projects_purchases(self, job: Job) -> dict[str, Any]:
        params = _as(job, PurchasesParams)
        head = await self._head(job)
        count = int(await self._view(job, "purchaseCount", params.project_id, block=head))
        indexes = range(params.offset, min(count, params.offset + params.limit))
        calls = [("purchaseOf", (params.project_id, i)) for i in indexes]
        rows = await self._views(job, calls, head)
        purchases = [
            {"purchase_id": int(r[0]), "buyer": r[1], "price": int(r[2]), "time": int(r[3])}
            for r in rows
        ]
        page = _page(f"/projects/{params.project_id}/purchases", params, count)
        return {**page, "project_id": params.project_id, "purchases": purchases}

    async def events_range(self, job: Job) -> dict[str, Any]:
        params = _as(job, EventRangeParams)
        token = self.platform().token_address
        head = int(await job.node.request("eth_blockNumber", []), 16)
        last = min(params.last_block, head)
        answer: dict[str, Any] = {"from_block": params.from_block, "head": head, "events": []}
        if last < params.from_block:
            return {**answer, "to_block": params.from_block - 1}
        log_filter = {
            "address": token,
            "fromBlock": hex(params.from_block),
            "toBlock": hex(last),
            "topics": [list(EVENT_TOPICS)],
        }
        events = decode_logs(await job.node.request("eth_getLogs", [log_filter]))
        last = page_end(events, last)
        viewer = self._viewer(job.caller)
        shown = [visible_to(e, viewer) for e in events if e.block_number <= last]
        return {**answer, "to_block": last, "events": [event_json(e) for e in shown if e]}

    def _viewer(self, caller: Caller | None) -> Viewer:
        """What the caller may see of the platform events: its own accounts' (ethgw_wire.events)."""
        if caller is None or caller.is_admin:
            return EVERYTHING
        return Viewer.of_accounts(self._accounts.addresses(caller))

    async def rpc_call(self, job: Job) -> Any:
        params = _as(job, RpcCallParams)
        if params.method not in self._rpc_read_methods:
            raise MethodNotAllowedError(f"method {params.method} is not allowed", field="method")
        return await job.node.request(params.method, params.params)

    # -- writes ----------------------------------------------------------------------

    async def contract_deploy(self, job: Job) -> dict[str, Any]:
        params = _as(job, DeployParams)
        # DeployParams checked that the arguments fit the ABI, so this encodes.
        tx: dict[str, Any] = {"data": constructor_data(params.abi, params.bytecode, params.args)}
        if params.gas_limit is not None:
            tx["gas"] = params.gas_limit
        signer = params.from_address or ADMIN
        sent = await self._sender.send(job.node, job.task_id, signer, tx, params.abi)
        return await self._answer(job, sent)

    async def account_create(self, job: Job) -> dict[str, Any]:
        params = _as(job, CreateAccountParams)
        # The keystore is encrypted here (scrypt, seconds under load), not on the node; what
        # the node does (the funding's send) is one call, too little to hold a slot for.
        job.node_done()
        record = self._accounts.created_by(job.task_id) or await self._accounts.create(
            params.password, self._funding_wei, job.task_id, job.caller
        )
        answer: dict[str, Any] = {
            "address": record.address,
            "funded_wei": record.funded_wei,
            "funding_tx": None,
        }
        if record.funded_wei == 0:
            return answer  # the key's faucet budget is spent
        # Gas money, so the account can transact at once; waited for on purpose.
        funding = await self._sender.send(
            job.node,
            step_key(job.task_id, "fund"),
            FAUCET,
            {"to": record.address, "value": record.funded_wei},
        )
        await self._mined(job, funding.tx_hash)
        return {**answer, "funding_tx": funding.tx_hash}

    async def account_unlock(self, job: Job) -> dict[str, Any]:
        params = _as(job, UnlockParams)
        job.node_done()  # the key is derived here (scrypt), not on the node
        until = await self._accounts.unlock(
            params.address, params.password, params.duration_s, job.caller
        )
        return {"address": params.address, "unlocked_until": until}

    async def token_mint(self, job: Job) -> dict[str, Any]:
        params = _as(job, MintParams)
        return await self._token_call(job, ADMIN, "mint", params.address, params.value)

    async def token_burn(self, job: Job) -> dict[str, Any]:
        params = _as(job, BurnParams)
        return await self._token_call(job, ADMIN, "burn", params.address, params.value)

    async def token_set(self, job: Job) -> dict[str, Any]:
        params = _as(job, SetBalanceParams)
        return await self._token_call(job, ADMIN, "setBalance", params.address, params.value)

    async def token_transfer(self, job: Job) -> dict[str, Any]:
        params = _as(job, TransferParams)
        return await self._token_call(job, params.from_address, "transfer", params.to, params.value)

    async def token_publish(self, job: Job) -> dict[str, Any]:
        params = _as(job, PublishParams)
        digest = bytes.fromhex(params.project_hash.removeprefix("0x"))
        args: list[Any] = [params.project_name, digest, params.time]
        if params.price is not None:
            args.append(params.price)
        answer = await self._token_call(job, params.address, "publishProject", *args)
        if answer.get("status") == "mined":
            answer["project_id"] = await self._event_arg(
                job, answer["tx_hash"], "ProjectPublished", "id"
            )
        return answer

    async def token_buy(self, job: Job) -> dict[str, Any]:
        params = _as(job, BuyParams)
        answer = await self._token_call(
            job, params.address, "buyProject", params.project_id, params.time
        )
        if answer.get("status") == "mined":
            answer["purchase_id"] = await self._event_arg(
                job, answer["tx_hash"], "ProjectPurchased", "purchaseId"
            )
        return answer

    async def eth_send(self, job: Job) -> dict[str, Any]:
        params = _as(job, SendEtherParams)
        return await self._write(job, params.from_address, {"to": params.to, "value": params.value})

    async def rpc_send_raw(self, job: Job) -> dict[str, Any]:
        params = _as(job, RawTransactionParams)
        sent = await self._sender.send_raw(job.node, job.task_id, params.raw_tx)
        return await self._answer(job, sent)


def _as(job: Job, kind: type[P]) -> P:
    if not isinstance(job.params, kind):
        raise TypeError(f"{type(job.params).__name__} is not {kind.__name__}")
    return job.params


def _page(path: str, params: PageParams, total: int) -> dict[str, Any]:
    """Where a page of `total` rows starts and ends, and the path of the next one."""
    following = params.offset + params.limit
    next_path = (
        f"{API_PREFIX}{path}?offset={following}&limit={params.limit}" if following < total else None
    )
    return {"total": total, "offset": params.offset, "limit": params.limit, "next": next_path}


def _found(value: Any, message: str) -> Any:
    if value is None:
        raise NotFoundError(message)
    return to_json(value)
