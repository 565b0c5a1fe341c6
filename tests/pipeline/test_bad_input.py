"""Bad task input gives an error result with a clear code, and the provider goes on."""

from __future__ import annotations

import pytest

from consumer_service.task_client import TaskClient
from ethgw_wire.messages import ResultMessage, TaskMessage, TaskStatus
from ethgw_wire.settings import KafkaSettings
from tests.pipeline.test_operations import PASSWORD, ok
from tests.pipeline_fixtures import run_task

pytestmark = [pytest.mark.slow, pytest.mark.usefixtures("provider")]


async def raw(tasks: TaskClient, operation: str, **params: object) -> ResultMessage:
    """Submit without the client-side validation a service would do."""
    task = TaskMessage(operation=operation, params=params)
    await tasks.submit(task, topic=KafkaSettings().topic_read)
    result = await tasks.wait(task.task_id, 30)
    assert result is not None
    return result


def failed(result: ResultMessage, code: str) -> str:
    assert result.status is TaskStatus.FAILED
    assert result.error is not None
    assert result.error.code == code
    return result.error.message


async def test_unknown_operation_is_reported(tasks: TaskClient) -> None:
    """A task naming no operation fails with unknown_operation."""
    assert "nope" in failed(await raw(tasks, "nope"), "unknown_operation")


async def test_bad_address_is_reported_with_its_field(tasks: TaskClient) -> None:
    """A malformed address fails with invalid_params naming the field."""
    result = await raw(tasks, "eth.balance", address="0x1234")
    assert "address" in failed(result, "invalid_params")
    assert result.error is not None
    assert result.error.field == "address"


async def test_negative_amount_is_reported(tasks: TaskClient) -> None:
    """A negative token amount fails with invalid_params naming value."""
    result = await raw(tasks, "token.mint", address="0x" + "11" * 20, value=-5)
    assert "value" in failed(result, "invalid_params")


async def test_wrong_password_is_reported(tasks: TaskClient) -> None:
    """Unlocking with the wrong password fails with wrong_password."""
    address = ok(await run_task(tasks, "account.create", password=PASSWORD))["address"]
    result = await run_task(tasks, "account.unlock", address=address, password="not the one!")
    failed(result, "wrong_password")


async def test_locked_account_cannot_send(tasks: TaskClient) -> None:
    """A write from an account that was never unlocked fails with account_locked."""
    address = ok(await run_task(tasks, "account.create", password=PASSWORD))["address"]
    result = await run_task(tasks, "eth.send", to="0x" + "33" * 20, value=1, **{"from": address})
    failed(result, "account_locked")


async def test_contract_refusal_is_reported_with_the_custom_error(tasks: TaskClient) -> None:
    """Burning more tokens than an account holds fails with reverted and the error's name."""
    result = await run_task(tasks, "token.burn", address="0x" + "44" * 20, value=10)
    assert "InsufficientBalance" in failed(result, "reverted")


async def test_provider_keeps_serving_after_bad_input(tasks: TaskClient) -> None:
    """After every kind of bad input, a good task still succeeds."""
    await raw(tasks, "eth.balance", address="junk")
    assert ok(await run_task(tasks, "chain.block_number"))["block_number"] > 0
