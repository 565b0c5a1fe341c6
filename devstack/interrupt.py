"""asyncio.run for commands that start servers: SIGTERM stops them in order, as Ctrl-C does.

Without this a SIGTERM (`kill`, `timeout`, a CI runner giving up) ended the process at
once, and whatever it had started in a session of its own (the benchmark's `ethgw up`,
the soak's sandbox stack, their Geth nodes and Kafka) kept running with no one to stop it.

Once stopped, the command exits as a shell reports a command ended by the signal
(128 + its number): 143 after SIGTERM, 130 after Ctrl-C, so a caller can tell an
interrupted run from a finished one.
"""

from __future__ import annotations

import asyncio
import signal
from collections.abc import Coroutine
from typing import Any, TypeVar

T = TypeVar("T")


class Terminated(KeyboardInterrupt):
    """SIGTERM stopped the command, after what it had started was stopped."""


def interruption(sig: int) -> KeyboardInterrupt:
    """The exception a command raises once it stopped in order on `sig`."""
    return Terminated() if sig == signal.SIGTERM else KeyboardInterrupt()


def exit_status(interrupt: KeyboardInterrupt) -> int:
    """128 + the signal's number: 143 after SIGTERM, 130 after Ctrl-C."""
    sig = signal.SIGTERM if isinstance(interrupt, Terminated) else signal.SIGINT
    return 128 + sig


def run_stoppable(main: Coroutine[Any, Any, T]) -> T:
    """`asyncio.run(main)`; on SIGTERM `main` is cancelled, so its `finally` blocks run
    (stopping what it started, writing partial results), then Terminated (a
    KeyboardInterrupt) is raised here; after a Ctrl-C, KeyboardInterrupt."""
    try:
        return asyncio.run(_cancelled_on_sigterm(main))
    except asyncio.CancelledError:
        # Only the SIGTERM handler cancels the main task (Ctrl-C raises KeyboardInterrupt).
        raise Terminated from None


async def _cancelled_on_sigterm(main: Coroutine[Any, Any, T]) -> T:
    task = asyncio.current_task()
    assert task is not None
    loop = asyncio.get_running_loop()
    loop.add_signal_handler(signal.SIGTERM, task.cancel)
    try:
        return await main
    finally:
        loop.remove_signal_handler(signal.SIGTERM)


__all__ = ["Terminated", "exit_status", "interruption", "run_stoppable"]
