"""`ethgw keys create | list | revoke`: the gateway's API keys in the state folder.

A running gateway reloads the keys file every `ETHGW_GATEWAY_KEYS_RELOAD_S` (2 s): a key
made here is accepted, and a revoked one refused, without a restart."""

from __future__ import annotations

import argparse
import json
import time
from collections.abc import Sequence

from ethgw.failures import UserError
from gateway.keys import (
    ApiKey,
    Role,
    create_key,
    keys_path,
    load_keys,
    matching_keys,
    revoke_keys,
)
from service_kit.paths import default_state_dir


async def keys_create(args: argparse.Namespace) -> None:
    try:
        key = create_key(default_state_dir(), args.name, args.role)
    except ValueError as error:
        raise UserError(f"--name: {error}") from None
    print(key)  # shown once: only its hash is kept


async def keys_list(args: argparse.Namespace) -> None:
    keys = load_keys(keys_path(default_state_dir()))
    if args.json:
        print(json.dumps([_public(k) for k in keys], indent=2))
    elif keys:
        print(format_keys(keys))
    else:
        print("no keys yet (the gateway makes the first admin key when it starts)")


async def keys_revoke(args: argparse.Namespace) -> None:
    state_dir = default_state_dir()
    named = matching_keys(load_keys(keys_path(state_dir)), args.name_or_id)
    if not named:
        raise UserError(f"no key is named {args.name_or_id!r} or has that id (`ethgw keys list`)")
    if len(named) > 1 and not args.all:
        ids = ", ".join(k.key_id for k in named)
        raise UserError(
            f"{len(named)} keys are named {args.name_or_id!r} ({ids}): "
            "revoke one by its id, or all of them with --all"
        )
    for key in revoke_keys(state_dir, args.name_or_id):
        print(f"revoked {key.key_id} {key.name} ({key.role})")
    if not any(k.role is Role.ADMIN for k in load_keys(keys_path(state_dir))):
        print("no admin key is left: the gateway makes a new one when it next starts")


def format_keys(keys: Sequence[ApiKey]) -> str:
    """The table of `ethgw keys list`: id, name, role and creation time, never a hash."""
    width = max(len("name"), *(len(k.name) for k in keys))
    lines = [f"{'key_id':<12}  {'name':<{width}}  {'role':<5}  created (UTC)"]
    for key in keys:
        lines.append(
            f"{key.key_id:<12}  {key.name:<{width}}  {key.role.value:<5}  {_utc(key.created_at)}"
        )
    return "\n".join(lines)


def _utc(timestamp: float) -> str:
    return time.strftime("%Y-%m-%d %H:%M:%S", time.gmtime(timestamp))


def _public(key: ApiKey) -> dict[str, object]:
    """What `keys list --json` shows of a key: everything but its hash."""
    return {
        "key_id": key.key_id,
        "name": key.name,
        "role": key.role.value,
        "created_at": key.created_at,
    }


def add_key_commands(commands: argparse._SubParsersAction[argparse.ArgumentParser]) -> None:
    keys = commands.add_parser("keys", help="the gateway's API keys")
    actions = keys.add_subparsers(dest="action", required=True, metavar="ACTION")
    create = actions.add_parser("create", help="make a key and print it once")
    create.add_argument("--name", required=True, help="what the key is for (1-100 characters)")
    create.add_argument(
        "--role",
        choices=[role.value for role in Role],
        default=Role.USER.value,
        help="user: the API; admin: also the operator routes and the dashboard (default: user)",
    )
    create.set_defaults(handler=keys_create)
    listing = actions.add_parser("list", help="the keys: id, name, role, creation time")
    listing.add_argument("--json", action="store_true", help="as a JSON list")
    listing.set_defaults(handler=keys_list)
    revoke = actions.add_parser(
        "revoke", help="remove a key; a running gateway refuses it within seconds"
    )
    revoke.add_argument("name_or_id", help="the key's name or its key_id (`ethgw keys list`)")
    revoke.add_argument(
        "--all", action="store_true", help="revoke every key of that name when several share it"
    )
    revoke.set_defaults(handler=keys_revoke)


__all__ = ["add_key_commands", "format_keys"]
