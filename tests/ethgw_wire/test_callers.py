"""The caller stamp the gateway puts on forwarded requests, and who may use an account."""

from __future__ import annotations

import pytest
from pydantic import ValidationError

from ethgw_wire.callers import Caller, may_use
from ethgw_wire.messages import TaskMessage


def test_a_caller_survives_its_header() -> None:
    """A caller written to its header reads back the same."""
    caller = Caller(key_id="0123456789ab", role="user")
    assert Caller.from_header(caller.header_value()) == caller


@pytest.mark.parametrize("value", ["", "user", "root:0123", "admin:", "user:XYZ", "user:ab:cd"])
def test_a_malformed_header_is_refused(value: str) -> None:
    """A header that names no role or no hex key id is an error, never a caller."""
    with pytest.raises(ValidationError):
        Caller.from_header(value)


def test_a_task_carries_its_caller_on_the_wire() -> None:
    """A task's caller is in its JSON; a task without one reads back without one."""
    caller = Caller(key_id="abc", role="admin")
    task = TaskMessage(operation="accounts.list", caller=caller)
    assert TaskMessage.model_validate_json(task.model_dump_json()).caller == caller
    assert TaskMessage.model_validate_json('{"operation": "accounts.list"}').caller is None


def test_only_the_owner_an_admin_or_the_platform_may_use_an_account() -> None:
    """The owner, an admin key and the platform (no caller) may; another user key may not,
    nor any user key an account without owner."""
    owner = Caller(key_id="aaa", role="user")
    other = Caller(key_id="bbb", role="user")
    admin = Caller(key_id="ccc", role="admin")
    assert may_use(owner, "aaa")
    assert may_use(admin, "aaa")
    assert may_use(None, "aaa")
    assert not may_use(other, "aaa")
    assert not may_use(owner, None)
