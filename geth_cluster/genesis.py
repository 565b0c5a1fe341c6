"""The Clique genesis of the private network (forks up to London only)."""

from __future__ import annotations

from typing import Any

# Shanghai and later (and any terminal total difficulty) stop Clique sealing in
# geth 1.13, so the chain stays on London and contracts are compiled for paris.
_FORK_BLOCKS = (
    "homesteadBlock",
    "eip150Block",
    "eip155Block",
    "eip158Block",
    "byzantiumBlock",
    "constantinopleBlock",
    "petersburgBlock",
    "istanbulBlock",
    "muirGlacierBlock",
    "berlinBlock",
    "londonBlock",
    "arrowGlacierBlock",
    "grayGlacierBlock",
)


def clique_genesis(
    *,
    chain_id: int,
    period: int,
    gas_limit: int,
    signer: str,
    alloc: dict[str, int],
) -> dict[str, Any]:
    """Genesis for one Clique signer, prefunding each address of `alloc` (in wei)."""
    config: dict[str, Any] = {"chainId": chain_id}
    config.update({fork: 0 for fork in _FORK_BLOCKS})
    config["clique"] = {"period": period, "epoch": 30000}
    # extradata = 32 vanity bytes + the signers + 65 bytes for the seal.
    extradata = "0x" + "00" * 32 + signer.lower().removeprefix("0x") + "00" * 65
    return {
        "config": config,
        "difficulty": "1",
        "gasLimit": hex(gas_limit),
        "extradata": extradata,
        "alloc": {
            address.lower().removeprefix("0x"): {"balance": str(wei)}
            for address, wei in alloc.items()
        },
    }
