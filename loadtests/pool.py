"""The accounts of a benchmark group, lent to the users of its later cells.

A group's cells run on one start of the system, so an account made in one cell is still
there, funded and with a mined transaction, in the next. The pool file (JSON lines, one
account a line) is what the locustfile of each cell reads and extends: a user takes the
next unused account, and only when none is left creates one and appends it. A later
line for the same address (its unlock renewed) replaces the earlier one.

This module imports nothing of Locust, so the tests can use it without gevent.
"""

from __future__ import annotations

import json
from dataclasses import asdict, dataclass
from pathlib import Path


@dataclass(frozen=True)
class PooledAccount:
    """A user's account as the set-up left it."""

    address: str
    tx_hash: str  # a transaction it sent and saw mined: what the receipt lookups ask for
    unlocked_until: float  # epoch s; the unlock holds at least until then (a lower bound)

    def unlocked_for(self, seconds: float, now: float) -> bool:
        """Whether its unlock surely lasts `seconds` more (else the user unlocks it again)."""
        return self.unlocked_until - now >= seconds


def read_pool(path: Path) -> list[PooledAccount]:
    """The pool's accounts in the order they were first added; a missing file is empty."""
    try:
        lines = path.read_text().splitlines()
    except FileNotFoundError:
        return []
    accounts: dict[str, PooledAccount] = {}
    for line in lines:
        account = _parse(line)
        if account is not None:  # dict keeps the first position, takes the last value
            accounts[account.address] = account
    return list(accounts.values())


def _parse(line: str) -> PooledAccount | None:
    """One line, or None for a torn one (a cell killed while it appended)."""
    try:
        fields = json.loads(line)
        return PooledAccount(
            str(fields["address"]), str(fields["tx_hash"]), float(fields["unlocked_until"])
        )
    except (ValueError, KeyError, TypeError):
        return None


class AccountPool:
    """The accounts of earlier cells, each lent to one user of this cell."""

    def __init__(self, path: Path) -> None:
        self.path = path
        self._unused = read_pool(path)
        self._next = 0

    def take(self) -> PooledAccount | None:
        """The next account no user of this cell has yet; None when all are taken."""
        if self._next >= len(self._unused):
            return None
        self._next += 1
        return self._unused[self._next - 1]

    def add(self, account: PooledAccount) -> None:
        """Record an account made or renewed in this cell, for the cells after it; it is
        not lent again in this cell (its user has it)."""
        # File I/O is not patched by gevent: no other user runs between open and close.
        with self.path.open("a") as out:
            out.write(json.dumps(asdict(account)) + "\n")
