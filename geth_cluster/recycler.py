"""Recycling of zone III nodes (lbh-spec.md section 7): drain, restart, resync, re-admit.

The `Recycler` is the manager's tick listener. After every tick it feeds the zones to the
balancer's `RecyclePolicy` (consecutive zone III samples, one node at a time, never the last
routable node, a cool-down) and runs the steps for the node the policy names, in a task of its
own so sampling goes on meanwhile:

1. DRAINING, published at once: the providers stop routing to the node. It stays so while
   the providers finish what they already sent it: until their in-flight count for the node
   is 0 (`geth_cluster.drain`, bounded by `drain_max_s`), or a fixed `drain_s` when no
   provider URL is configured.
2. RESTARTING: the runtime stops and starts the node (`GethCluster.restart_node`, which returns
   once the node answers near the head).
3. SYNCING until the node has imported a block sealed after the restart and is within max_lag
   of the cluster head: a restarted geth can answer on its old block for ~10 s before its
   first sync, and re-admitting it then would route reads to a stale node.
4. The mark is cleared: the node is UP again (or CORDONED, if the operator had cordoned it),
   and its cool-down starts.

The operator's restart (`restart(node)`) runs the same steps with reason `operator`. Each
step is an event (`ethgw_wire.node_reports.ClusterEvent`) kept in a bounded list and sent to
the events topic; a failure is logged, recorded as `restart_failed`, and the mark cleared
all the same.
"""

from __future__ import annotations

import asyncio
import contextlib
import time
from collections import Counter, deque
from collections.abc import Callable, Coroutine
from typing import Any, Protocol

from balancer import RecyclePolicy, RecycleState, Zone
from ethgw_wire.kafka import publish
from ethgw_wire.node_reports import ClusterEvent, EventKind, Lifecycle, NodeReport
from geth_cluster.cluster import GethCluster
from geth_cluster.config import ManagerSettings
from geth_cluster.drain import InflightSource, drain
from geth_cluster.errors import ClusterError, UnknownNodeError
from geth_cluster.snapshot import Snapshot
from service_kit.logs import get_logger

log = get_logger("ethgw.manager")

REASON_ZONE3 = "zone3"
REASON_OPERATOR = "operator"

_RESYNC_POLL_S = 0.25
# A node carrying one of these marks is in somebody's restart already.
_MARKED = frozenset({Lifecycle.DRAINING, Lifecycle.RESTARTING, Lifecycle.SYNCING})


class RestartInProgressError(ClusterError):
    """A restart is already running: one node at a time (lbh-spec.md section 7)."""


class ResyncTimeoutError(ClusterError):
    """A restarted node did not follow the head within `resync_timeout_s`."""


# -- the event log ---------------------------------------------------------------------------


class EventSink(Protocol):
    """Where events go; `send` returns once the event is accepted."""

    async def send(self, event: ClusterEvent) -> None: ...


class KafkaEventSink:
    """Events on the events topic, keyed by node, so one node's events stay in order."""

    def __init__(self, producer: Any, topic: str) -> None:
        self._producer = producer
        self._topic = topic

    async def send(self, event: ClusterEvent) -> None:
        await publish(self._producer, self._topic, event, key=event.node)


class EventLog:
    """The recent events (newest last, at most `keep`) and their publication.

    A slow or absent broker never holds up a recycle step: a send that fails or takes longer
    than `timeout_s` is logged and dropped (the event stays in the list and in the log).
    """

    def __init__(self, keep: int, sink: EventSink | None = None, timeout_s: float = 5.0) -> None:
        self.sink = sink
        self._events: deque[ClusterEvent] = deque(maxlen=keep)
        self._timeout_s = timeout_s

    def recent(self) -> list[ClusterEvent]:
        return list(self._events)

    async def record(
        self, node: str, kind: EventKind, reason: str | None = None, detail: str = ""
    ) -> ClusterEvent:
        event = ClusterEvent(node=node, kind=kind, reason=reason, detail=detail)
        self._events.append(event)
        log.info("cluster_event", node=node, kind=str(kind), reason=reason, detail=detail)
        if self.sink is not None:
            try:
                async with asyncio.timeout(self._timeout_s):
                    await self.sink.send(event)
            except Exception as error:  # the step goes on; the event is in the list and log
                log.warning("event_publish_failed", node=node, kind=str(kind), error=repr(error))
        return event


# -- the recycler ----------------------------------------------------------------------------


class RecycledPool(Protocol):
    """What the recycler needs of the cluster manager: the pool, its last view and the recycle
    marks. A protocol of its own, so the recycler does not import the manager that owns it."""

    @property
    def cluster(self) -> GethCluster: ...

    @property
    def max_lag(self) -> int: ...

    def snapshot(self) -> Snapshot: ...

    async def set_recycle_state(self, node_id: str, state: Lifecycle | None) -> NodeReport: ...


class Recycler:
    """Applies `RecyclePolicy` after every tick and runs drain-restart-resync for its choice.

    `automatic` False leaves only the operator's `restart`. `state` is the policy's starting
    memory (for example cool-downs already running). `clock` gives the policy's `now`.
    `inflight` None drains for the fixed `drain_s`; with a source, until the node is empty.
    """

    def __init__(
        self,
        manager: RecycledPool,
        settings: ManagerSettings,
        events: EventLog,
        *,
        automatic: bool = True,
        state: RecycleState | None = None,
        clock: Callable[[], float] = time.monotonic,
        inflight: InflightSource | None = None,
    ) -> None:
        self._manager = manager
        self._inflight = inflight
        self._settings = settings
        self._events = events
        self._automatic = automatic
        self._policy = RecyclePolicy(settings.restart_after, settings.cooldown_s)
        self._state = state if state is not None else RecycleState()
        self._clock = clock
        self._task: asyncio.Task[None] | None = None
        # Finished restarts and failed attempts, by (node, reason): the metrics' counters.
        self.restarts: Counter[tuple[str, str]] = Counter()
        self.failures: Counter[tuple[str, str]] = Counter()

    @property
    def running(self) -> str | None:
        """The node being recycled now, if any."""
        return self._state.restarting

    async def on_tick(self, manager: RecycledPool, snapshot: Snapshot) -> None:
        if not self._automatic:
            return
        # Only UP nodes are routable: a cordoned or recycling node neither counts as the
        # routable node that must remain nor is picked (a cordoned node is the operator's).
        zones = {
            view.node_id: view.zone if view.lifecycle is Lifecycle.UP else Zone.DOWN
            for view in snapshot.nodes
        }
        self._state, node = self._policy.observe(self._state, zones, self._clock())
        if node is None:
            return
        view = next(v for v in snapshot.nodes if v.node_id == node)
        detail = (
            f"distance={view.distance:.4f} dis_avemax={snapshot.dis_avemax:.4f} "
            f"streak={self._settings.restart_after}"
        )
        self._launch(node, REASON_ZONE3, detail)

    def restart(self, node: str, reason: str = REASON_OPERATOR) -> None:
        """Start the drain-restart-resync steps for `node` now; they run in the background.

        Raises UnknownNodeError for a node outside the pool and RestartInProgressError while
        another restart runs.
        """
        views = {v.node_id: v for v in self._manager.snapshot().nodes}
        if node not in views:
            raise UnknownNodeError(f"no pool node named {node!r}")
        if self._state.restarting is not None:
            raise RestartInProgressError(
                f"{self._state.restarting} is being restarted; one node at a time"
            )
        if views[node].lifecycle in _MARKED:
            # The healer is starting it again after a crash.
            raise RestartInProgressError(f"{node} is {views[node].lifecycle}")
        self._state = self._policy.start(self._state, node)
        self._launch(node, reason, "requested by the operator")

    def _launch(self, node: str, reason: str, detail: str) -> None:
        self._task = asyncio.create_task(
            self._recycle(node, reason, detail), name=f"recycle-{node}"
        )

    async def wait_idle(self) -> None:
        """Until the running restart, if any, is over."""
        if self._task is not None:
            await asyncio.shield(self._task)

    async def aclose(self) -> None:
        """Stop the running restart. A node caught between stop and start is started again
        first, so closing the manager never leaves a node stopped."""
        task, self._task = self._task, None
        if task is not None and not task.done():
            task.cancel()
            with contextlib.suppress(asyncio.CancelledError):
                await task

    # -- the steps ---------------------------------------------------------------------------

    async def _recycle(self, node: str, reason: str, detail: str) -> None:
        manager = self._manager
        cluster = manager.cluster
        spec = cluster.spec(node)
        started = time.monotonic()
        try:
            await manager.set_recycle_state(node, Lifecycle.DRAINING)
            await self._events.record(node, EventKind.DRAINING, reason, detail)
            drained = await self._drain(node)
            pid = cluster.runtime.pid(spec)
            await manager.set_recycle_state(node, Lifecycle.RESTARTING)
            await self._events.record(node, EventKind.RESTARTING, reason, f"pid={pid} {drained}")
            # Shielded: a stop mid-restart waits for the node to be started again.
            await run_to_end(cluster.restart_node(node))
            block, head = await resync(manager, self._events, self._settings, node, reason)
            await manager.set_recycle_state(node, None)
            self.restarts[(node, reason)] += 1
            await self._events.record(
                node,
                EventKind.UP,
                reason,
                f"block={block} head={head} took_s={time.monotonic() - started:.1f}",
            )
        except asyncio.CancelledError:
            await self._clear(node)
            raise
        except Exception as error:
            log.exception("restart_failed", node=node, reason=reason)
            self.failures[(node, reason)] += 1
            await self._clear(node)
            await self._events.record(node, EventKind.RESTART_FAILED, reason, repr(error))
        finally:
            # The cool-down starts whether the restart worked or not, so a failing node is not
            # retried in a loop.
            self._state = self._policy.finished(self._state, node, self._clock())

    async def _drain(self, node: str) -> str:
        """Wait while the providers finish what they sent `node`; the figures, for the event."""
        settings = self._settings
        if self._inflight is None:
            # No in-flight feedback configured: a fixed wait long enough for a task already
            # sent to the node to finish.
            await asyncio.sleep(settings.drain_s)
            return f"drain=fixed drain_waited_s={settings.drain_s:.2f}"
        drained = await drain(
            node, self._inflight, bound_s=settings.drain_max_s, settle_s=settings.drain_settle_s
        )
        log.info("drain_ended", node=node, detail=drained.describe())
        return drained.describe()

    async def _clear(self, node: str) -> None:
        await clear_mark(self._manager, node)


# -- steps shared with the healer --------------------------------------------------------------


async def run_to_end(step: Coroutine[Any, Any, None]) -> None:
    """Run a start or restart so that cancelling the caller waits for it to finish: closing
    the manager never leaves a node between stop and start."""
    running = asyncio.ensure_future(step)
    try:
        await asyncio.shield(running)
    except asyncio.CancelledError:
        with contextlib.suppress(Exception):
            await running
        raise


async def clear_mark(manager: RecycledPool, node: str) -> None:
    """Clear the node's recycle mark; a failure here must not hide the step's own."""
    with contextlib.suppress(Exception):
        await manager.set_recycle_state(node, None)


async def resync(
    manager: RecycledPool, events: EventLog, settings: ManagerSettings, node: str, reason: str
) -> tuple[int, int]:
    """SYNCING, published and recorded, until the (re)started node has imported a block sealed
    after its start and is within max_lag of the head; returns its block and the head."""
    cluster = manager.cluster
    heads = await cluster.heads()
    restarted_at = max((h for h in heads.values() if h is not None), default=0)
    await manager.set_recycle_state(node, Lifecycle.SYNCING)
    pid = cluster.runtime.pid(cluster.spec(node))
    await events.record(
        node, EventKind.SYNCING, reason, f"pid={pid} block={heads.get(node)} head={restarted_at}"
    )
    return await wait_following(cluster, node, restarted_at, manager.max_lag, settings)


async def wait_following(
    cluster: GethCluster, node: str, restarted_at: int, max_lag: int, settings: ManagerSettings
) -> tuple[int, int]:
    """Until `node` has a block above `restarted_at` (sealed after the restart) and is within
    max_lag of the head; returns its block and the head."""
    mine: int | None = None
    head = restarted_at
    try:
        async with asyncio.timeout(settings.resync_timeout_s):
            while True:
                heads = await cluster.heads()
                head = max((h for h in heads.values() if h is not None), default=0)
                mine = heads.get(node)
                if mine is not None and mine > restarted_at and head - mine <= max_lag:
                    return mine, head
                await asyncio.sleep(_RESYNC_POLL_S)
    except TimeoutError:
        raise ResyncTimeoutError(
            f"{node} not following after {settings.resync_timeout_s:.0f}s: "
            f"block={mine} head={head} restarted_at={restarted_at}"
        ) from None
