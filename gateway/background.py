"""One refresh at a time in the background, for the dashboard's readings that it never waits
for (the Kafka lag, the providers' in-flight counts): a poll answers the last reading at once
and, when that reading is older than `cache_s`, starts one refresh (several open dashboards
cost one refresh a period; nothing runs while nobody looks)."""

from __future__ import annotations

import asyncio
import contextlib
import time
from collections.abc import Callable, Coroutine
from typing import Any


class BackgroundRefresh:
    """Starts `refresh()` as a task when the last reading is stale and none is running."""

    def __init__(self, name: str, cache_s: float) -> None:
        self._name = name
        self.cache_s = cache_s
        self._task: asyncio.Task[Any] | None = None

    def is_fresh(self, measured_at: float | None) -> bool:
        return measured_at is not None and time.time() - measured_at < self.cache_s

    def kick(
        self, measured_at: float | None, refresh: Callable[[], Coroutine[Any, Any, Any]]
    ) -> None:
        """Start `refresh()` unless the reading of `measured_at` is fresh or one is running."""
        if self.is_fresh(measured_at) or (self._task is not None and not self._task.done()):
            return
        self._task = asyncio.create_task(refresh(), name=self._name)

    async def aclose(self) -> None:
        """Cancel a running refresh and wait for it to end."""
        if self._task is not None:
            self._task.cancel()
            with contextlib.suppress(asyncio.CancelledError):
                await self._task
