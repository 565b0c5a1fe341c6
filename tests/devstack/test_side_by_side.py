"""`side_by_side`: how `ethgw up` and the sandbox start the broker and the nodes at once."""

from __future__ import annotations

import asyncio

import pytest

from devstack.stack import side_by_side


async def test_both_steps_run_at_once_and_both_results_come_back() -> None:
    """Each step waits for the other to have started: one after the other would never end."""
    first_started, second_started = asyncio.Event(), asyncio.Event()

    async def step(mine: asyncio.Event, other: asyncio.Event, result: str) -> str:
        mine.set()
        await other.wait()
        return result

    async with asyncio.timeout(5):
        results = await side_by_side(
            step(first_started, second_started, "broker"),
            step(second_started, first_started, "nodes"),
        )
    assert results == ("broker", "nodes")


async def test_a_failing_step_is_raised_once_the_other_has_ended() -> None:
    """The error of one step comes after the other step finished, so nothing is left
    running when the caller cleans up."""
    ended: list[str] = []

    async def fails() -> None:
        raise RuntimeError("the broker did not start")

    async def slower() -> None:
        await asyncio.sleep(0.2)
        ended.append("nodes")

    with pytest.raises(RuntimeError, match="the broker did not start"):
        await side_by_side(fails(), slower())
    assert ended == ["nodes"]
