"""One account's writes keep their order, with nonces and without gaps."""

from __future__ import annotations

import asyncio
import secrets

import pytest

from consumer_service.task_client import TaskClient
from ethgw_wire.operations import new_task
from tests.pipeline.test_operations import new_unlocked_account, ok
from tests.pipeline_fixtures import run_task

pytestmark = [pytest.mark.slow, pytest.mark.usefixtures("provider")]


async def test_hundred_concurrent_transfers_are_mined_in_order_without_gaps(
    tasks: TaskClient,
) -> None:
    """100 transfers from one account in flight at once: all mined, nonces 0..99 in order."""
    sender = await new_unlocked_account(tasks)
    recipient = "0x" + secrets.token_hex(20)
    batch = [
        new_task(
            "eth.send", {"from": sender, "to": recipient, "value": i + 1, "wait_receipt": True}
        )
        for i in range(100)
    ]
    waits = [asyncio.ensure_future(tasks.wait(t.task_id, 120)) for t in batch]
    for task in batch:  # Kafka order = submission order: one key, one partition
        await tasks.submit(task)
    results = await asyncio.gather(*waits)
    answers = [ok(r) for r in results if r is not None]
    balance = ok(await run_task(tasks, "eth.balance", address=recipient))["balance_wei"]
    nonce = ok(
        await run_task(
            tasks, "rpc.call", method="eth_getTransactionCount", params=[sender, "latest"]
        )
    )
    assert len(answers) == 100
    assert [a["nonce"] for a in answers] == list(range(100))
    assert all(a["status"] == "mined" for a in answers)
    assert balance == sum(range(1, 101))
    assert int(nonce, 16) == 100
