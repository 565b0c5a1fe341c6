"""The dispatcher addresses each result to the reply topic its task named."""

from __future__ import annotations

from ethgw_wire.operations import new_task
from tests.provider.test_dispatcher import READ_HANDLERS, ScriptedStrategy, World


async def test_a_result_names_the_reply_topic_of_its_task() -> None:
    """A task's reply_to is copied to its result, which the sink then publishes there."""
    world = World(ScriptedStrategy(), READ_HANDLERS)
    await world.add_node("node-1")
    task = new_task("chain.block_number", {}).model_copy(update={"reply_to": "ethgw.replies.x"})
    world.submit(task)
    await world.run_until(lambda: world.result_of(task) is not None)
    result = world.result_of(task)
    assert result is not None
    assert result.reply_to == "ethgw.replies.x"
