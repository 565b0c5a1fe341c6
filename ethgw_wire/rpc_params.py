"""What each JSON-RPC method of /rpc takes: how many params and the shape of each.

A call is checked here before it becomes a task, so a bad one is refused with -32602
and a reason naming the param, instead of reaching a node (or, for a raw transaction,
crashing the decoder of the service that orders it by its sender).
"""

from __future__ import annotations

import re
from collections.abc import Callable, Sequence
from dataclasses import dataclass
from typing import Any

from eth_account import Account

_ADDRESS = re.compile(r"^0x[0-9a-fA-F]{40}$")
_HASH32 = re.compile(r"^0x[0-9a-fA-F]{64}$")
_QUANTITY = re.compile(r"^0x[0-9a-fA-F]{1,64}$")
_HEX_DATA = re.compile(r"^0x(?:[0-9a-fA-F]{2})*$")
_BLOCK_TAGS = frozenset({"latest", "earliest", "pending", "safe", "finalized"})


class InvalidRpcParamsError(ValueError):
    """A call's params do not fit its method; the message names the param and says why."""


def _address(value: Any) -> None:
    if not isinstance(value, str) or not _ADDRESS.match(value):
        raise ValueError("must be a 0x-prefixed hex address of 20 bytes")


def _hash32(value: Any) -> None:
    if not isinstance(value, str) or not _HASH32.match(value):
        raise ValueError("must be a 0x-prefixed hex hash of 32 bytes")


def _quantity(value: Any) -> None:
    if not isinstance(value, str) or not _QUANTITY.match(value):
        raise ValueError("must be a 0x-prefixed hex number")


def _block_number(value: Any) -> None:
    if isinstance(value, str) and value in _BLOCK_TAGS:
        return
    if not isinstance(value, str) or not _QUANTITY.match(value):
        raise ValueError(f"must be a 0x-prefixed hex block number or one of {sorted(_BLOCK_TAGS)}")


def _block_or_hash(value: Any) -> None:
    """EIP-1898: a block number or tag, a block hash, or an object naming either."""
    if isinstance(value, dict):
        return
    if isinstance(value, str) and _HASH32.match(value):
        return
    try:
        _block_number(value)
    except ValueError:
        raise ValueError("must be a block number, tag, hash or EIP-1898 object") from None


def _count(value: Any) -> None:
    """feeHistory's block count: geth takes a hex or decimal number."""
    if isinstance(value, int) and not isinstance(value, bool) and value >= 0:
        return
    if isinstance(value, str) and (_QUANTITY.match(value) or value.isdecimal()):
        return
    raise ValueError("must be a block count (a hex or decimal number)")


def _boolean(value: Any) -> None:
    if not isinstance(value, bool):
        raise ValueError("must be true or false")


def _object(value: Any) -> None:
    if not isinstance(value, dict):
        raise ValueError("must be an object")


def _numbers(value: Any) -> None:
    valid = isinstance(value, list) and all(
        isinstance(n, int | float) and not isinstance(n, bool) for n in value
    )
    if not valid:
        raise ValueError("must be an array of numbers")


@dataclass(frozen=True)
class Param:
    name: str
    check: Callable[[Any], None]  # raises ValueError with the reason
    required: bool = True


def _optional(name: str, check: Callable[[Any], None]) -> Param:
    return Param(name, check, required=False)


_CALL = (
    Param("transaction", _object),
    _optional("block", _block_or_hash),
    _optional("state_override", _object),
)
_AT_BLOCK = Param("block", _block_or_hash)

# As geth's handlers declare them: a non-pointer argument is required (geth answers
# "missing value for required argument"), a pointer one may be left out.
SIGNATURES: dict[str, tuple[Param, ...]] = {
    "eth_blockNumber": (),
    "eth_chainId": (),
    "eth_gasPrice": (),
    "eth_maxPriorityFeePerGas": (),
    "eth_syncing": (),
    "net_version": (),
    "net_peerCount": (),
    "net_listening": (),
    "web3_clientVersion": (),
    "eth_getBalance": (Param("address", _address), _AT_BLOCK),
    "eth_getCode": (Param("address", _address), _AT_BLOCK),
    "eth_getTransactionCount": (Param("address", _address), _AT_BLOCK),
    "eth_getStorageAt": (Param("address", _address), Param("slot", _quantity), _AT_BLOCK),
    "eth_getBlockByNumber": (Param("block", _block_number), Param("full", _boolean)),
    "eth_getBlockByHash": (Param("block_hash", _hash32), Param("full", _boolean)),
    "eth_getBlockTransactionCountByNumber": (Param("block", _block_number),),
    "eth_getBlockTransactionCountByHash": (Param("block_hash", _hash32),),
    "eth_getTransactionByHash": (Param("transaction_hash", _hash32),),
    "eth_getTransactionReceipt": (Param("transaction_hash", _hash32),),
    "eth_call": (*_CALL, _optional("block_overrides", _object)),
    "eth_estimateGas": _CALL,
    "eth_feeHistory": (
        Param("block_count", _count),
        Param("newest_block", _block_number),
        _optional("reward_percentiles", _numbers),
    ),
    "eth_getLogs": (Param("filter", _object),),
}


def check_params(method: str, params: Sequence[Any]) -> None:
    """Raise InvalidRpcParamsError when `params` do not fit `method` (a method without a
    signature here is left to the node)."""
    signature = SIGNATURES.get(method)
    if signature is None:
        return
    _check_count(method, signature, len(params))
    for index, (param, value) in enumerate(zip(signature, params, strict=False)):
        try:
            param.check(value)
        except ValueError as error:
            raise InvalidRpcParamsError(f"params[{index}] ({param.name}) {error}") from None


def _check_count(method: str, signature: tuple[Param, ...], given: int) -> None:
    required = sum(param.required for param in signature)
    if required <= given <= len(signature):
        return
    names = ", ".join(p.name if p.required else f"[{p.name}]" for p in signature)
    wanted = str(required) if required == len(signature) else f"{required} to {len(signature)}"
    raise InvalidRpcParamsError(
        f"{method} takes {wanted} params ({names or 'none'}); {given} given"
    )


def raw_transaction_sender(params: Sequence[Any]) -> tuple[str, str]:
    """eth_sendRawTransaction's one param, checked and decoded: (the signed transaction
    as lower-case hex, its sender). Raises InvalidRpcParamsError naming what is wrong."""
    if len(params) != 1:
        raise InvalidRpcParamsError(
            f"eth_sendRawTransaction takes 1 param (signed_transaction); {len(params)} given"
        )
    raw = params[0]
    where = "params[0] (signed_transaction)"
    if not isinstance(raw, str) or not _HEX_DATA.match(raw):
        raise InvalidRpcParamsError(
            f"{where} must be 0x-prefixed hex with an even number of digits"
        )
    if raw == "0x":
        raise InvalidRpcParamsError(f"{where} is empty")
    try:
        sender = Account.recover_transaction(raw)
    # The decoder raises a zoo of types on bad bytes (rlp's, TypeError, ValueError, eth_keys'):
    # whatever it raises, the bytes are not a signed transaction.
    except Exception as error:
        reason = f"{type(error).__name__}: {error}"
        raise InvalidRpcParamsError(f"{where} is not a signed transaction ({reason})") from None
    return raw.lower(), str(sender)


# -- what a call may cost: the block range of eth_getLogs, the gas of a call ---------------

_LATEST_TAGS = frozenset({"latest", "pending", "safe", "finalized"})

# The default of the blocks one eth_getLogs may span (ETHGW_READ_LOGS_MAX_BLOCKS), and the
# span of one page of platform events (the events.range operation).
LOGS_MAX_BLOCKS = 2000


@dataclass(frozen=True)
class CallCaps:
    """How much one read call may ask of a node (the read service's settings)."""

    logs_max_blocks: int  # blocks one eth_getLogs may span
    call_max_gas: int  # gas one eth_call or eth_estimateGas may burn


def capped_params(method: str, params: list[Any], caps: CallCaps, head: int | None) -> list[Any]:
    """The params of a call whose shape check_params accepted, within `caps`: a call that
    asks for more raises InvalidRpcParamsError naming the param and the cap; a call that
    gives no gas gets the cap (a node would give it its own, larger one). `head`: the
    chain's latest block as the node reports say, None when not known."""
    if method == "eth_getLogs":
        _check_log_range(params[0], caps.logs_max_blocks, head)
    elif method in ("eth_call", "eth_estimateGas"):
        return [_capped_gas(params[0], caps.call_max_gas), *params[1:]]
    return params


def _capped_gas(transaction: dict[str, Any], cap: int) -> dict[str, Any]:
    where = "params[0] (transaction)"
    gas = transaction.get("gas")
    if gas is None:
        return {**transaction, "gas": hex(cap)}
    try:
        _quantity(gas)
    except ValueError as error:
        raise InvalidRpcParamsError(f"{where} gas {error}") from None
    if int(gas, 16) > cap:
        raise InvalidRpcParamsError(
            f"{where} gas {int(gas, 16)} exceeds the cap of {cap} gas per call"
        )
    return transaction


def _check_log_range(log_filter: dict[str, Any], cap: int, head: int | None) -> None:
    where = "params[0] (filter)"
    if log_filter.get("blockHash") is not None:
        return  # one block
    first = _block_of(log_filter.get("fromBlock"), "fromBlock")
    last = _block_of(log_filter.get("toBlock"), "toBlock")
    if first is None and last is None:
        return  # the head alone, whatever it is
    start, end = (head if first is None else first), (head if last is None else last)
    if start is None or end is None:
        raise InvalidRpcParamsError(
            f"{where} spans a range that cannot be checked against the cap of {cap} blocks"
            " while the chain's head is not known; give fromBlock and toBlock as numbers"
        )
    if end - start + 1 > cap:
        raise InvalidRpcParamsError(
            f"{where} spans {end - start + 1} blocks ({start} to {end});"
            f" the cap is {cap} blocks per eth_getLogs"
        )


def _block_of(value: Any, name: str) -> int | None:
    """A filter bound as a block number; None when it names the chain's head (a tag, or
    left out). "earliest" is block 0."""
    if value is None or (isinstance(value, str) and value in _LATEST_TAGS):
        return None
    if value == "earliest":
        return 0
    if isinstance(value, str) and _QUANTITY.match(value):
        return int(value, 16)
    raise InvalidRpcParamsError(
        f"params[0] (filter) {name} must be a 0x-prefixed hex block number or one of"
        f" {sorted(_BLOCK_TAGS)}"
    )


# -- the block a call reads at: read your writes, one head per batch -----------------------


def block_param_index(method: str) -> int | None:
    """Where `method` takes the block it reads at (a number, a tag or a hash), None when it
    takes none."""
    for index, param in enumerate(SIGNATURES.get(method, ())):
        if param.check in (_block_number, _block_or_hash):
            return index
    return None


def block_number_of(value: Any) -> int | None:
    """The block number a block param names, None for a tag, a hash or an EIP-1898 object."""
    if isinstance(value, str) and _QUANTITY.match(value) and not _HASH32.match(value):
        return int(value, 16)
    return None


def reads_latest(method: str, params: Sequence[Any]) -> bool:
    """Whether the call reads at "latest", by name or by leaving its block out."""
    if method == "eth_blockNumber":
        return True
    if method == "eth_getLogs":
        return bool(params) and isinstance(params[0], dict) and _logs_latest_keys(params[0]) != []
    index = block_param_index(method)
    if index is None:
        return False
    return index >= len(params) or params[index] == "latest"


def pin_latest(method: str, params: Sequence[Any], head: int) -> list[Any]:
    """The call's params with "latest" (named or left out) replaced by block `head`, so every
    call of one request reads the same block."""
    pinned = list(params)
    if method == "eth_getLogs":
        if pinned and isinstance(pinned[0], dict):
            query = dict(pinned[0])
            for key in _logs_latest_keys(query):
                query[key] = hex(head)
            pinned[0] = query
        return pinned
    index = block_param_index(method)
    if index is None:
        return pinned
    if index < len(pinned):
        if pinned[index] == "latest":
            pinned[index] = hex(head)
    elif index == len(pinned):
        pinned.append(hex(head))
    return pinned


def _logs_latest_keys(query: dict[str, Any]) -> list[str]:
    """The bounds of an eth_getLogs filter that mean "latest" (a filter by block hash has none)."""
    if "blockHash" in query:
        return []
    return [key for key in ("fromBlock", "toBlock") if query.get(key, "latest") == "latest"]
