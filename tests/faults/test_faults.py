"""Faults under a steady mixed load through the gateway of a real stack (issue #8).

Each scenario: a few concurrent clients read and write through the gateway; the fault is
injected; the broken part is brought back; the load runs on; then every accepted task must
have its result, every successful write must be on chain exactly once, reads must not have
failed, and writes must have succeeded or been refused with a clear retriable error.
"""

from __future__ import annotations

import pytest

from tests.faults.scenario import Faults, assert_clean

pytestmark = pytest.mark.slow


async def test_baseline_without_a_fault(faults: Faults) -> None:
    """With nothing broken, the load sees no failure and every write lands once."""

    async def nothing() -> None:
        return None

    row = await faults.exercise("none (baseline)", nothing)
    assert_clean(row)
