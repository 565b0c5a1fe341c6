"""An account's key is derived in the provider, not on the node: unlocking or creating an
account stops counting on its node before the key work starts."""

from __future__ import annotations

import asyncio
from pathlib import Path
from typing import Any, cast

from ethgw_wire.operations import CreateAccountParams, UnlockParams
from provider.handlers import Handlers, Job

ADDRESS = "0x" + "ab" * 20


class KeyWork:
    """An account book whose key work notes whether the node was already released."""

    def __init__(self, released: list[bool]) -> None:
        self.released = released
        self.node_released_first: bool | None = None

    def check_use(self, *args: Any) -> None:
        """Every caller may use every account here."""

    async def unlock(self, *args: Any) -> float:
        self.node_released_first = bool(self.released)
        await asyncio.sleep(0)
        return 1.0

    def created_by(self, task_id: str) -> None:
        return None

    async def create(self, *args: Any) -> Any:
        self.node_released_first = bool(self.released)
        return type("Record", (), {"address": ADDRESS, "funded_wei": 0})()


def _handlers(accounts: KeyWork) -> Handlers:
    unused = cast(Any, None)
    return Handlers(cast(Any, accounts), unused, unused, Path("platform.json"), 1.0, 0, ())


def _job(params: Any, released: list[bool]) -> Job:
    return Job("t-1", params, cast(Any, None), "node-1", None, lambda: released.append(True))


async def test_an_unlock_releases_its_node_before_deriving_the_key() -> None:
    """account.unlock calls node_done before the scrypt work."""
    released: list[bool] = []
    accounts = KeyWork(released)
    params = UnlockParams(address=ADDRESS, password="correct horse battery")
    await _handlers(accounts).table["account.unlock"](_job(params, released))
    assert accounts.node_released_first is True


async def test_an_account_creation_releases_its_node_before_encrypting_the_key() -> None:
    """account.create calls node_done before the scrypt work."""
    released: list[bool] = []
    accounts = KeyWork(released)
    params = CreateAccountParams(password="correct horse battery")
    await _handlers(accounts).table["account.create"](_job(params, released))
    assert accounts.node_released_first is True
