"""Self-healing: start again a pool node whose process died or whose container exited.

The `Healer` is a tick listener of the manager, beside the recycler. A node is dead when the
manager calls it DOWN for `process` (the runtime has no running process or container for it)
while nobody is restarting it and the operator has not cordoned it. Each death goes to the
pure `CrashPolicy`, which answers a backoff or a crash loop:

- a restart: RESTARTING is published at once (out of routing, and no other restart takes the
  node), then after the backoff the node is started (`GethCluster.start_node`), resynced as a
  recycled node is, and re-admitted; the steps are events with reason `crashed`;
- a crash loop: the node is cordoned (event `cordoned`, reason `crashloop`) and left stopped.
  Uncordoning it gives it a clean history, and the healer takes it up again.

A restart that fails is `restart_failed`; the node is still dead at the next tick, which is
its next death, so the backoff grows and the loop limit applies to failed starts too.
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
import time
from collections import Counter
from collections.abc import Callable, Coroutine
from typing import Any, Protocol

from ethgw_wire.node_reports import EventKind, Lifecycle, NodeReport
from geth_cluster.config import ManagerSettings
from geth_cluster.crash_policy import CrashHistory, GiveUp, Restart
from geth_cluster.recycler import EventLog, RecycledPool, clear_mark, resync, run_to_end
from geth_cluster.snapshot import DownReason, NodeSnapshot, Snapshot

log = logging.getLogger("ethgw.manager")

REASON_CRASHED = "crashed"
REASON_CRASHLOOP = "crashloop"


class HealedPool(RecycledPool, Protocol):
    """What the healer needs of the manager: the recycler's needs plus the cordon."""

    async def cordon(
        self, node_id: str, reason: str | None = None, detail: str = ""
    ) -> NodeReport: ...


class Healer:
    """Restarts dead pool nodes with backoff; cordons a node that keeps dying.

    `enabled` False leaves dead nodes DOWN. `clock` gives the policy's `now`.
    """

    def __init__(
        self,
        manager: HealedPool,
        settings: ManagerSettings,
        events: EventLog,
        *,
        enabled: bool = True,
        clock: Callable[[], float] = time.monotonic,
    ) -> None:
        self._manager = manager
        self._settings = settings
        self._events = events
        self._enabled = enabled
        self._policy = settings.crash_policy()
        self._clock = clock
        self._histories: dict[str, CrashHistory] = {}
        self._tasks: dict[str, asyncio.Task[None]] = {}
        # Finished and failed restarts, by (node, reason): added to the recycler's counters.
        self.restarts: Counter[tuple[str, str]] = Counter()
        self.failures: Counter[tuple[str, str]] = Counter()

    def history(self, node: str) -> CrashHistory:
        return self._histories.get(node, CrashHistory())

    def busy(self, node: str) -> bool:
        """Whether a restart or a cordon of `node` is under way."""
        task = self._tasks.get(node)
        return task is not None and not task.done()

    async def on_tick(self, manager: RecycledPool, snapshot: Snapshot) -> None:
        if not self._enabled:
            return
        for view in snapshot.nodes:
            if self.busy(view.node_id):
                continue
            if self.history(view.node_id).gave_up and not view.cordoned:
                # The operator uncordoned a node given up on: a fresh start.
                log.info("node crash history cleared node=%s", view.node_id)
                self._histories.pop(view.node_id)
            if _is_dead(view):
                self._on_death(view.node_id)

    def _on_death(self, node: str) -> None:
        history, decision = self._policy.on_death(self.history(node), self._clock())
        self._histories[node] = history
        if isinstance(decision, GiveUp):
            self._start(node, self._give_up(node, decision))
        else:
            self._start(node, self._heal(node, decision))

    def _start(self, node: str, step: Coroutine[Any, Any, None]) -> None:
        self._tasks[node] = asyncio.create_task(step, name=f"heal-{node}")

    async def wait_idle(self) -> None:
        """Until every running restart or cordon is over."""
        await asyncio.gather(*(asyncio.shield(t) for t in self._tasks.values()))

    async def aclose(self) -> None:
        """Stop the running restarts; a node being started is started to the end first."""
        tasks, self._tasks = self._tasks, {}
        for task in tasks.values():
            task.cancel()
        for task in tasks.values():
            with contextlib.suppress(asyncio.CancelledError):
                await task

    # -- the steps ---------------------------------------------------------------------------

    async def _give_up(self, node: str, decision: GiveUp) -> None:
        window_s = self._settings.heal_window_s
        log.warning(
            "node crash loop node=%s deaths=%d window_s=%.0f action=cordoned",
            node,
            decision.deaths,
            window_s,
        )
        detail = f"deaths={decision.deaths} window_s={window_s:.0f} left stopped"
        await self._manager.cordon(node, REASON_CRASHLOOP, detail)

    async def _heal(self, node: str, decision: Restart) -> None:
        manager = self._manager
        cluster = manager.cluster
        started = time.monotonic()
        try:
            # At once, so the node is visibly being restarted and no other restart takes it.
            await manager.set_recycle_state(node, Lifecycle.RESTARTING)
            await asyncio.sleep(decision.delay_s)
            await self._events.record(
                node,
                EventKind.RESTARTING,
                REASON_CRASHED,
                f"deaths={decision.deaths} delay_s={decision.delay_s:.1f}",
            )
            # Someone may have started it during the backoff: never a second geth on one folder.
            if not await cluster.runtime.is_running(cluster.spec(node)):
                await run_to_end(cluster.start_node(node))
            block, head = await resync(manager, self._events, self._settings, node, REASON_CRASHED)
            await manager.set_recycle_state(node, None)
            self.restarts[(node, REASON_CRASHED)] += 1
            await self._events.record(
                node,
                EventKind.UP,
                REASON_CRASHED,
                f"block={block} head={head} took_s={time.monotonic() - started:.1f}",
            )
        except asyncio.CancelledError:
            await clear_mark(manager, node)
            raise
        except Exception as error:
            log.exception("restart failed node=%s reason=%s", node, REASON_CRASHED)
            self.failures[(node, REASON_CRASHED)] += 1
            await clear_mark(manager, node)
            await self._events.record(node, EventKind.RESTART_FAILED, REASON_CRASHED, repr(error))


def _is_dead(view: NodeSnapshot) -> bool:
    """Dead and nobody's: no process, no restart under way (the lifecycle would say so), and
    not cordoned (a cordoned node is the operator's, or a crash loop given up on)."""
    return (
        view.down_reason is DownReason.PROCESS
        and view.lifecycle is Lifecycle.DOWN
        and not view.cordoned
    )
