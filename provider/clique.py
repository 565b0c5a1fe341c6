"""Who sealed a Clique block, read from the block itself.

A Clique block's `miner` is zero: the sealer signs the header instead, and the 65-byte
signature ends its extraData. The signed hash is Keccak-256 of the RLP of the header with
the signature cut off (geth's `clique.SealHash`; the base fee is part of it from London on).
"""

from __future__ import annotations

from collections.abc import Mapping
from typing import Any

import rlp
from eth_keys.datatypes import Signature
from eth_utils.address import to_checksum_address
from eth_utils.crypto import keccak

VANITY_BYTES = 32
SEAL_BYTES = 65
ADDRESS_BYTES = 20


def _bytes(value: str) -> bytes:
    return bytes.fromhex(value.removeprefix("0x"))


def _int(value: str) -> int:
    return int(value, 16)


def seal_hash(block: Mapping[str, Any]) -> bytes:
    """The hash the sealer signed: the header as geth encodes it, less the signature."""
    fields: list[Any] = [
        _bytes(block["parentHash"]),
        _bytes(block["sha3Uncles"]),
        _bytes(block["miner"]),
        _bytes(block["stateRoot"]),
        _bytes(block["transactionsRoot"]),
        _bytes(block["receiptsRoot"]),
        _bytes(block["logsBloom"]),
        _int(block["difficulty"]),
        _int(block["number"]),
        _int(block["gasLimit"]),
        _int(block["gasUsed"]),
        _int(block["timestamp"]),
        _bytes(block["extraData"])[:-SEAL_BYTES],
        _bytes(block["mixHash"]),
        _bytes(block["nonce"]),
    ]
    if block.get("baseFeePerGas") is not None:
        fields.append(_int(block["baseFeePerGas"]))
    return keccak(rlp.encode(fields))


def sealer_of(block: Mapping[str, Any]) -> str:
    """The checksummed address that sealed `block`; for the genesis block, which no one
    sealed, the first signer it names."""
    extra = _bytes(block["extraData"])
    if _int(block["number"]) == 0:
        return to_checksum_address(extra[VANITY_BYTES : VANITY_BYTES + ADDRESS_BYTES])
    r, s, v = extra[-SEAL_BYTES:-33], extra[-33:-1], extra[-1]
    signature = Signature(vrs=(v, int.from_bytes(r, "big"), int.from_bytes(s, "big")))
    public_key = signature.recover_public_key_from_msg_hash(seal_hash(block))
    return str(public_key.to_checksum_address())
