"""`ethgw keys` against a running gateway: keys made and revoked by the command take effect
without a restart (the gateway re-reads its keys file every `keys_reload_s`, 2 s)."""

from __future__ import annotations

import asyncio
import secrets
import time

import httpx
import pytest

from ethgw_wire.http_api import API_KEY_HEADER
from gateway.keys import hash_key
from tests.cli.commands import clean_env, ethgw
from tests.pipeline_fixtures import Stack

pytestmark = pytest.mark.slow

# Two reload periods and the command's own start, with room for a loaded machine.
TAKES_EFFECT_S = 20.0


async def _status_once_settled(stack: Stack, key: str, wanted: int) -> int:
    """GET /admin/instances with `key` until it answers `wanted` or TAKES_EFFECT_S pass;
    the last status."""
    deadline = time.monotonic() + TAKES_EFFECT_S
    async with httpx.AsyncClient(base_url=stack.gateway.url, timeout=10) as client:
        while True:
            answer = await client.get("/admin/instances", headers={API_KEY_HEADER: key})
            if answer.status_code == wanted or time.monotonic() > deadline:
                return answer.status_code
            await asyncio.sleep(0.2)


async def test_a_revoked_key_is_refused_by_the_running_gateway(stack: Stack) -> None:
    """`keys create` makes a key the running gateway accepts; after `keys revoke` the same
    gateway process answers it 401, while its other keys still work."""
    env = clean_env(stack.state_dir)
    name = f"cli-{secrets.token_hex(4)}"
    created = await asyncio.to_thread(
        ethgw, "keys", "create", "--name", name, "--role", "admin", env=env
    )
    assert created.returncode == 0, created.stderr
    key = created.stdout.strip()
    assert await _status_once_settled(stack, key, 200) == 200
    gateway = stack.gateway.process
    assert gateway is not None

    revoked = await asyncio.to_thread(ethgw, "keys", "revoke", name, env=env)

    assert revoked.returncode == 0, revoked.stderr
    assert revoked.stdout.startswith(f"revoked {hash_key(key)[:12]} {name} (admin)")
    assert await _status_once_settled(stack, key, 401) == 401
    assert gateway.poll() is None  # the same process: no restart
    assert await _status_once_settled(stack, stack.admin_key, 200) == 200
