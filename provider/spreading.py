"""Every signed transaction a node took, handed to the other routable nodes at once.

One account's writes go out on whichever node the scheduler picks for each, so nonce n
may reach node A while n+1 reaches node B. A node holds a transaction whose nonce it
cannot yet execute in its queue and gossips only executable ones, and a transaction over
4 KB (a contract deployment) is only announced, then fetched by each peer. So the sealer
learns of n+1 only after n has hopped from A to B and B has announced both: with the
platform admin's deployments spread over three nodes, each waited 2-9 s for its block
at 4 deployments a second (docs/benchmarks.md, "Nonce gaps between nodes").

Handing the bytes to every node removes the hop, as dshackle broadcasts
eth_sendRawTransaction to all its upstreams. It costs the nodes nothing they would not do
anyway (gossip brings every transaction to every node), and a node that already has it
answers "already known". The sends are not awaited: a write's answer never waits on a
node it was not sent to, and a node that does not answer is left to gossip.
"""

from __future__ import annotations

import asyncio
from collections.abc import Callable, Iterable
from dataclasses import dataclass

from provider import metrics
from provider.chain import AlreadyKnownError, NodeClient


@dataclass(frozen=True)
class Peer:
    """A node the bytes may go to: its RPC URL and its client."""

    url: str
    client: NodeClient


def spread_targets(peers: Iterable[Peer], taken_by: str) -> list[Peer]:
    """The peers to hand a transaction to: all but the node that took it."""
    return [peer for peer in peers if peer.url != taken_by]


class TransactionSpreader:
    """Sends a transaction's bytes to every other routable node, at most `max_in_flight`
    sends at a time (a slow node cannot pile them up: past the bound, gossip carries it)."""

    def __init__(self, peers: Callable[[], Iterable[Peer]], max_in_flight: int) -> None:
        self._peers = peers
        self._max_in_flight = max_in_flight
        self._sends: set[asyncio.Task[None]] = set()

    def spread(self, raw_tx: str, taken_by: str) -> None:
        """Start handing `raw_tx`, which the node at `taken_by` took, to the other nodes."""
        if self._max_in_flight == 0:  # turned off: nothing to count as skipped either
            return
        for peer in spread_targets(self._peers(), taken_by):
            if len(self._sends) >= self._max_in_flight:
                metrics.SPREAD_SENDS.labels("skipped").inc()
                continue
            send = asyncio.create_task(self._send(peer.client, raw_tx))
            self._sends.add(send)
            send.add_done_callback(self._sends.discard)

    @property
    def in_flight(self) -> int:
        return len(self._sends)

    async def settled(self) -> None:
        """Return once the sends under way have ended."""
        await asyncio.gather(*self._sends, return_exceptions=True)

    async def close(self) -> None:
        """Cancel the sends still under way (the provider's shutdown)."""
        sends = list(self._sends)
        for send in sends:
            send.cancel()
        await asyncio.gather(*sends, return_exceptions=True)

    @staticmethod
    async def _send(client: NodeClient, raw_tx: str) -> None:
        try:
            await client.send_raw_transaction(raw_tx)
        except AlreadyKnownError:
            metrics.SPREAD_SENDS.labels("known").inc()
        except Exception:  # refused or unreachable: gossip, or the rebroadcaster, covers it
            metrics.SPREAD_SENDS.labels("failed").inc()
        else:
            metrics.SPREAD_SENDS.labels("sent").inc()
