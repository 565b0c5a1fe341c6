"""What became of a write answered with a hash that never reached the chain.

For each lost hash: who signed it (account, nonce, provider, node it was sent to), which
node's pool still holds it, the account's nonce on chain, and the transaction mined at
its nonce in its place (with the task and provider that signed that one), if any. A
replaced hash says two providers signed the same nonce; a hash still pooled behind a
lower missing nonce says a gap; a hash nowhere says it was dropped.
"""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass
from typing import Any

from ethgw_wire.messages import TaskStatus
from loadtests.steady import Chain, ResultsLedger


@dataclass(frozen=True)
class Signed:
    """What the ledger says of one transaction hash: the task that answered with it."""

    task_id: str
    provider: str | None
    node: str | None
    sender: str
    nonce: int
    answered_at: float


@dataclass(frozen=True)
class LostWrite:
    tx_hash: str
    signed: Signed | None
    pooled_on: list[str]  # nodes whose pool (pending or queued) holds the hash
    chain_nonce: int | None  # the sender's mined nonce at the end
    mined_instead: str | None  # the hash mined at the same sender and nonce
    mined_instead_by: Signed | None

    def line(self) -> str:
        s = self.signed
        who = (
            "no result names it"
            if s is None
            else f"sender={s.sender} nonce={s.nonce} provider={s.provider} node={s.node} "
            f"task={s.task_id} answered_at={s.answered_at:.2f}"
        )
        other = self.mined_instead_by
        instead = (
            "none"
            if self.mined_instead is None
            else f"{self.mined_instead} ("
            + (
                "no task of the window"
                if other is None
                else f"task={other.task_id} provider={other.provider} node={other.node} "
                f"answered_at={other.answered_at:.2f}"
            )
            + ")"
        )
        return (
            f"lost {self.tx_hash}: {who}; in pools: {', '.join(self.pooled_on) or 'none'}; "
            f"chain nonce={self.chain_nonce}; mined at its nonce instead: {instead}"
        )


def signed_by_hash(ledger: ResultsLedger) -> dict[str, Signed]:
    """Every transaction hash a successful write answered with, and what signed it."""
    found: dict[str, Signed] = {}
    for task_id, seen in ledger.finals.items():
        for s in seen:
            data = s.result.data
            if s.result.status is not TaskStatus.SUCCEEDED or not isinstance(data, dict):
                continue
            if "tx_hash" not in data or "nonce" not in data:
                continue
            found[str(data["tx_hash"]).lower()] = Signed(
                task_id,
                s.result.provider,
                s.result.node,
                str(data.get("from")),
                int(data["nonce"]),
                s.at,
            )
    return found


async def _pool_hashes(node: Chain) -> set[str]:
    content = await node.call("txpool_content")
    hashes: set[str] = set()
    for section in ("pending", "queued"):
        for by_nonce in (content.get(section) or {}).values():
            hashes |= {str(tx["hash"]).lower() for tx in by_nonce.values()}
    return hashes


async def _mined_at(
    sealer: Chain, sender: str, nonce: int, first_block: int, head: int
) -> str | None:
    """The hash mined from `sender` with `nonce` in blocks first_block..head."""
    for number in range(first_block, head + 1):
        block: dict[str, Any] = await sealer.call("eth_getBlockByNumber", hex(number), True)
        for tx in block.get("transactions") or []:
            if str(tx["from"]).lower() == sender.lower() and int(tx["nonce"], 16) == nonce:
                return str(tx["hash"]).lower()
    return None


async def diagnose(
    lost: list[str],
    ledger: ResultsLedger,
    sealer: Chain,
    nodes: Mapping[str, Chain],
    first_block: int,
) -> list[LostWrite]:
    """One LostWrite per lost hash; a node that does not answer is left out of the pools."""
    signed = signed_by_hash(ledger)
    pools: dict[str, set[str]] = {}
    for name, node in nodes.items():
        try:
            pools[name] = await _pool_hashes(node)
        except Exception:  # a node down at the end: its pool is unknown, not empty
            continue
    head = int(await sealer.call("eth_blockNumber"), 16)
    found: list[LostWrite] = []
    for tx_hash in lost:
        key = tx_hash.lower()
        mine = signed.get(key)
        chain_nonce = instead = None
        if mine is not None:
            chain_nonce = await sealer.nonce(mine.sender)
            if mine.nonce < chain_nonce:
                instead = await _mined_at(sealer, mine.sender, mine.nonce, first_block, head)
        found.append(
            LostWrite(
                tx_hash,
                mine,
                sorted(name for name, hashes in pools.items() if key in hashes),
                chain_nonce,
                instead,
                None if instead is None else signed.get(instead),
            )
        )
    return found
