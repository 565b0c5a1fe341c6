"""Node keys, made once per node folder so enodes are known before any node runs."""

from __future__ import annotations

import secrets
from pathlib import Path

from eth_keys.datatypes import PrivateKey

from service_kit.keyfiles import write_private


def ensure_nodekey(datadir: Path) -> str:
    """The node's secp256k1 public key (128 hex chars), creating geth/nodekey if absent."""
    path = datadir / "geth" / "nodekey"
    if not path.exists():
        write_private(path, secrets.token_hex(32))
    private = PrivateKey(bytes.fromhex(path.read_text().strip()))
    return str(private.public_key.to_hex()).removeprefix("0x")


LOOPBACK = "127.0.0.1"


def enode_url(public_key: str, p2p_port: int, host: str = LOOPBACK) -> str:
    """The static-peer address of a node (on this machine unless `host` says otherwise)."""
    return f"enode://{public_key}@{host}:{p2p_port}"
