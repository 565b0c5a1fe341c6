"""The request mix of the thesis's table 5.1, as plain data.

The locustfile builds its tasks from MIX and the tests check MIX against the
table, so the weights are written down once. This module imports nothing of
Locust (which monkey-patches the standard library with gevent on import).
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Literal


@dataclass(frozen=True)
class MixEntry:
    """One kind of request of table 5.1: its weight in percent and the route it uses."""

    name: str
    weight: int
    method: Literal["GET", "POST"]
    path: str  # under /api/v1
    thesis: str  # the table's wording (translated)


MIX: tuple[MixEntry, ...] = (
    # connection management
    MixEntry("eth_balance", 20, "GET", "/eth/balance", "an account's balance"),
    MixEntry("coinbase", 5, "GET", "/conn/coinbase", "the current main account"),
    MixEntry("node_accounts", 5, "GET", "/conn/accounts", "all accounts of this client"),
    MixEntry("block_number", 10, "GET", "/conn/blockNum", "the block count"),
    # account management
    MixEntry("create_account", 5, "POST", "/admin/new", "create a new account"),
    MixEntry("list_accounts", 5, "GET", "/admin/list", "list all current accounts"),
    MixEntry("unlock", 5, "POST", "/admin/unlock", "unlock an account"),
    # transaction management
    MixEntry("send_transaction", 30, "POST", "/tx/send", "send a transaction"),
    # "get the transaction hash": the receipt, looked up by the hash a send returned
    MixEntry("transaction_receipt", 5, "GET", "/tx/receipt", "get a transaction hash"),
    MixEntry("transaction_by_hash", 5, "GET", "/tx/txhash", "a transaction by its hash"),
    # contract publishing
    MixEntry("deploy_contract", 5, "POST", "/contract/deploy", "deploy a smart contract"),
)

# Requests that wait their turn on one platform-wide resource, whatever node serves them:
# a deploy on the admin account's turn, an account creation on the faucet's turn and the
# provider's scrypt slots, an unlock on the scrypt slots (docs/benchmarks.md, "The platform
# accounts' turn"). The other requests' latency is what the node choice moves.
PLATFORM_QUEUED = frozenset({"deploy_contract", "create_account", "unlock"})

SETUP_PREFIX = "setup "
"""Requests a simulated user makes before its first task (its own account, a first
mined transaction) are named with this prefix and left out of the fixed request count."""

# The HTTP calls behind one counted request (the first call, and the polls of a deferred
# one): the request is recorded once, under its own name, from its first call to its result.
CALL_PREFIX = "call "


def weights() -> dict[str, int]:
    return {entry.name: entry.weight for entry in MIX}
