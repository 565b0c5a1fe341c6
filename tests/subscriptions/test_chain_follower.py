"""The chain feed's rules: which node it reads, which block numbers it publishes, and that a
failing source never makes a gap or a repeat."""

from __future__ import annotations

from dataclasses import dataclass, field

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from ethgw_wire.chain_heads import ChainHead, HeadSequence
from ethgw_wire.node_reports import Lifecycle, NodeReport
from geth_cluster.chain_feed import (
    ChainFollower,
    Source,
    numbers_to_fetch,
    pick_source,
    readable_sources,
)
from geth_cluster.errors import NodeUnreachableError


def test_first_start_publishes_only_the_head() -> None:
    """With nothing published yet, the feed starts at the head, not at genesis."""
    assert list(numbers_to_fetch(None, 40, 1024)) == [40]


def test_every_block_after_the_last_is_fetched() -> None:
    """A source ahead by several blocks gives every number in between, in order."""
    assert list(numbers_to_fetch(10, 14, 1024)) == [11, 12, 13, 14]


def test_a_source_behind_gives_nothing() -> None:
    """A source at or behind the last published number publishes nothing (no repeat)."""
    assert list(numbers_to_fetch(10, 9, 1024)) == []
    assert list(numbers_to_fetch(10, 10, 1024)) == []


def test_backfill_is_bounded() -> None:
    """After a long outage only the newest max_backfill blocks are caught up."""
    assert list(numbers_to_fetch(10, 100, 5)) == [96, 97, 98, 99, 100]


def report(node: str, lifecycle: Lifecycle, block: int | None) -> NodeReport:
    return NodeReport(
        node_id=node, rpc_url=f"http://{node}", memory=0, cpu=0, block=block, lifecycle=lifecycle
    )


def test_only_answering_nodes_are_sources() -> None:
    """DOWN, restarting and syncing nodes, and nodes without a head, are not read."""
    sources = readable_sources(
        [
            report("a", Lifecycle.UP, 5),
            report("b", Lifecycle.DOWN, 5),
            report("c", Lifecycle.CORDONED, 7),
            report("d", Lifecycle.RESTARTING, 9),
            report("e", Lifecycle.UP, None),
            report("f", Lifecycle.SYNCING, 3),
        ]
    )
    assert [s.node_id for s in sources] == ["c", "a"]


def test_the_current_source_is_kept_while_near_the_best() -> None:
    """The feed stays on its node while it is within a block of the best one."""
    candidates = [Source("a", "", 10), Source("b", "", 9)]
    assert pick_source(candidates, "b", set()) == Source("b", "", 9)


def test_a_lagging_or_resting_source_is_left() -> None:
    """A source that fell behind, or that is resting after a failure, is replaced by the best."""
    candidates = [Source("a", "", 10), Source("b", "", 5)]
    assert pick_source(candidates, "b", set()) == Source("a", "", 10)
    assert pick_source(candidates, "a", {"a"}) == Source("b", "", 5)
    assert pick_source(candidates, None, {"a", "b"}) is None


# -- the follower over fake nodes ------------------------------------------------------------


def block(number: int, source: str) -> ChainHead:
    return ChainHead(
        number=number,
        hash=f"h{number}",
        parent_hash=f"h{number - 1}",
        header={"number": hex(number)},
        source=source,
    )


@dataclass
class FakeNodes:
    """Nodes sharing one chain, each with its own head; a node in `failing` refuses reads."""

    heads: dict[str, int]
    failing: set[str] = field(default_factory=set)

    def sources(self) -> list[Source]:
        return [Source(n, n, h) for n, h in sorted(self.heads.items())]

    async def head(self, source: Source) -> int:
        self._check(source)
        return self.heads[source.node_id]

    async def block(self, source: Source, number: int) -> ChainHead | None:
        self._check(source)
        if number > self.heads[source.node_id]:
            return None
        return block(number, source.node_id)

    def _check(self, source: Source) -> None:
        if source.node_id in self.failing:
            raise NodeUnreachableError(f"{source.node_id} is gone")


@dataclass
class ListSink:
    sent: list[ChainHead] = field(default_factory=list)

    async def send(self, head: ChainHead) -> None:
        self.sent.append(head)


class Clock:
    def __init__(self) -> None:
        self.now = 0.0

    def __call__(self) -> float:
        return self.now


async def test_source_loss_continues_on_another_node_from_the_next_block() -> None:
    """When the source fails, the next node publishes from the block after the last one."""
    nodes = FakeNodes({"a": 5, "b": 5})
    sink, clock = ListSink(), Clock()
    follower = ChainFollower(nodes, sink, nodes.sources, rest_s=5.0, clock=clock)
    await follower.step()
    assert follower.source == "a"
    assert [b.number for b in sink.sent] == [5]
    nodes.failing.add("a")
    nodes.heads = {"a": 5, "b": 8}
    await follower.step()  # a fails and rests
    await follower.step()  # b takes over
    assert follower.source == "b"
    assert [b.number for b in sink.sent] == [5, 6, 7, 8]


async def test_restart_continues_after_the_last_published_block() -> None:
    """A feed started with the topic's last record publishes the blocks after it only."""
    nodes = FakeNodes({"a": 12})
    sink = ListSink()
    follower = ChainFollower(nodes, sink, nodes.sources, last_published=block(9, "a"))
    await follower.step()
    assert [b.number for b in sink.sent] == [10, 11, 12]


async def test_a_refused_publish_is_sent_again() -> None:
    """When the sink refuses a block, the next step sends that same block again."""

    class FlakySink(ListSink):
        refuse = True

        async def send(self, head: ChainHead) -> None:
            if self.refuse:
                self.refuse = False
                raise ConnectionError("broker away")
            await super().send(head)

    nodes = FakeNodes({"a": 3})
    sink = FlakySink()
    follower = ChainFollower(nodes, sink, nodes.sources, last_published=block(1, "a"))
    with pytest.raises(ConnectionError):
        await follower.step()
    await follower.step()
    assert [b.number for b in sink.sent] == [2, 3]


events = st.lists(
    st.tuples(
        st.sampled_from(["a", "b", "c"]),  # a node
        st.integers(0, 3),  # how far its head moves
        st.booleans(),  # whether it fails from now on (until the next event for it)
    ),
    min_size=1,
    max_size=40,
)


@settings(max_examples=200, deadline=None)
@given(events=events)
async def test_published_numbers_are_consecutive_whatever_fails(
    events: list[tuple[str, int, bool]],
) -> None:
    """Whatever nodes fail and however their heads move, the published numbers are
    consecutive and never repeat."""
    nodes = FakeNodes({"a": 10, "b": 10, "c": 10})
    sink, clock = ListSink(), Clock()
    follower = ChainFollower(nodes, sink, nodes.sources, rest_s=1.0, clock=clock)
    for node, advance, fails in events:
        nodes.heads[node] += advance
        best = max(nodes.heads.values())
        # Geth nodes share one chain: a node never has a block the others cannot reach.
        nodes.heads = {n: max(h, best - 3) for n, h in nodes.heads.items()}
        (nodes.failing.add if fails else nodes.failing.discard)(node)
        await follower.step()
        clock.now += 0.5
    numbers = [b.number for b in sink.sent]
    assert numbers == list(range(numbers[0], numbers[0] + len(numbers))) if numbers else True


def test_consumers_drop_numbers_already_delivered() -> None:
    """A repeated or older block number is refused by the consumers' guard."""
    sequence = HeadSequence()
    assert [sequence.accept(n) for n in (5, 6, 6, 4, 7)] == [True, True, False, False, True]
