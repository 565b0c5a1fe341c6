"""asyncio.run for commands that start servers: SIGTERM stops them in order, as Ctrl-C does.

Without this a SIGTERM (`kill`, `timeout`, a CI runner giving up) ended the process at
once, and whatever it had started in a session of its own (the benchmark's `ethgw up`,
the soak's sandbox stack, their Geth nodes and Kafka) kept running with no one to stop it.
"""

from __future__ import annotations

import asyncio
import signal
from collections.abc import Coroutine
from typing import Any, TypeVar

T = TypeVar("T")


def run_stoppable(main: Coroutine[Any, Any, T]) -> T:
    """`asyncio.run(main)`; on SIGTERM `main` is cancelled, so its `finally` blocks run
    (stopping what it started, writing partial results), then KeyboardInterrupt is raised
    here, as after a Ctrl-C."""
    try:
        return asyncio.run(_cancelled_on_sigterm(main))
    except asyncio.CancelledError:
        # Only the SIGTERM handler cancels the main task (Ctrl-C raises KeyboardInterrupt).
        raise KeyboardInterrupt from None


async def _cancelled_on_sigterm(main: Coroutine[Any, Any, T]) -> T:
    task = asyncio.current_task()
    assert task is not None
    loop = asyncio.get_running_loop()
    loop.add_signal_handler(signal.SIGTERM, task.cancel)
    try:
        return await main
    finally:
        loop.remove_signal_handler(signal.SIGTERM)


__all__ = ["run_stoppable"]
