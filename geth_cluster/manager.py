"""The cluster manager: samples the pool, publishes node states, keeps each node's life cycle.

Every `sample_interval_s` it reads every node's head over RPC and its memory and CPU through
the runtime's sampler (lbh-spec.md section 1), smooths the ratios, decides which nodes are
DOWN, and publishes one `NodeReport` per pool node, keyed by node id, on the compacted
node-states topic the providers route by. Zones and LBH (sections 3-4) are computed with the
balancer for the operator view (`snapshot()`).

Life cycle: the operator can cordon a node (out of routing, no restart); the recycler
(`geth_cluster.recycler`, one per manager) watches every tick through a `TickListener` and sets
DRAINING / RESTARTING / SYNCING through `set_recycle_state`; the healer (`geth_cluster.healer`)
starts again, with backoff, a node whose process died, and cordons one that keeps dying. Every
change is published at once, not at the next tick, and recorded in the event log (`events`).

Run it with `run_manager(...)` (the `ethgw up` launcher), `open_manager(...)` (the operator API's
lifespan) or `python -m geth_cluster.manager` next to a running cluster.
"""

from __future__ import annotations

import asyncio
import contextlib
import math
import signal
import time
from collections import deque
from collections.abc import AsyncIterator, Sequence
from contextlib import asynccontextmanager
from dataclasses import dataclass, field
from typing import Any, Protocol

import httpx

from balancer import Calibration, LBHScheduler, NodeState, RecycleState, Zone
from ethgw_wire.kafka import encode, kafka_producer
from ethgw_wire.node_reports import EventKind, Lifecycle, NodeReport
from ethgw_wire.settings import ClusterSettings, KafkaSettings
from geth_cluster.chain_feed import (
    ChainFeed,
    ChainFollower,
    KafkaHeadSink,
    NodeBlockReader,
    last_published,
    readable_sources,
)
from geth_cluster.cluster import GethCluster
from geth_cluster.config import ManagerSettings, load_calibration
from geth_cluster.drain import ProviderInflight
from geth_cluster.errors import UnknownNodeError
from geth_cluster.healer import Healer
from geth_cluster.layout import NodeSpec, pool_specs
from geth_cluster.node_rpc import ChainPosition, settled_chain_position
from geth_cluster.recycler import EventLog, EventSink, KafkaEventSink, Recycler
from geth_cluster.runtimes.base import Sampler
from geth_cluster.smoothing import Ewma
from geth_cluster.snapshot import DownReason, NodeSnapshot, Snapshot
from geth_cluster.stats import ProcessSampler, ResourceSample
from service_kit.logs import get_logger

log = get_logger("ethgw.manager")

RECYCLE_STATES = frozenset({Lifecycle.DRAINING, Lifecycle.RESTARTING, Lifecycle.SYNCING})
"""The states the recycler owns; while one is set it is what the node publishes."""

# Samplers known to be a few fast syscalls run inline; any other (Docker's stats call waits
# for two engine readings, about a second) runs in a worker thread so the loop never blocks.
_INLINE_SAMPLERS: tuple[type, ...] = (ProcessSampler,)

# How long the publisher waits before sending again after Kafka refused a batch.
_PUBLISH_RETRY_S = 1.0


def down_reason(
    *,
    running: bool,
    sampled: bool,
    block: int | None,
    head: int | None,
    max_lag: int,
    returning: bool = False,
    pending_is_stale: bool = False,
) -> DownReason | None:
    """Why the node is DOWN this tick, or None when it is healthy; the first cause wins.

    A `returning` node (DOWN last tick, or never seen) is let back only once its pending
    state is past its head. An UP node is not held to that: between importing a block and
    rebuilding pending, every node is briefly "stale", and that must not flap it.
    """
    if not running:
        return DownReason.PROCESS
    if not sampled:
        return DownReason.SAMPLER
    if block is None:
        return DownReason.RPC
    if head is not None and head - block > max_lag:
        return DownReason.LAG
    if returning and pending_is_stale:
        return DownReason.STALE_PENDING
    return None


def effective_lifecycle(
    down: DownReason | None, *, cordoned: bool, recycling: Lifecycle | None
) -> Lifecycle:
    """The one state a node publishes, from its health and the operator's and recycler's marks.

    A recycle step wins (a restarting node is expectedly silent, and RESTARTING says more than
    DOWN); then health, because a cordoned node that stops answering is DOWN for everyone;
    the cordon mark survives both and shows again when the node is healthy.
    """
    if recycling is not None:
        return recycling
    if down is not None:
        return Lifecycle.DOWN
    return Lifecycle.CORDONED if cordoned else Lifecycle.UP


def _unit(value: float) -> float:
    # EWMA of values in [0, 1] stays in [0, 1] but for a rounding ulp, which the wire model's
    # bounds would refuse.
    return min(1.0, max(0.0, value))


# -- seams -----------------------------------------------------------------------------------


class ReportSink(Protocol):
    """Where reports go; `send` returns once every report is durably accepted."""

    async def send(self, reports: Sequence[NodeReport]) -> None: ...


class KafkaReportSink:
    """Reports on the node-states topic, keyed by node id (the topic is compacted)."""

    def __init__(self, producer: Any, topic: str) -> None:
        self._producer = producer
        self._topic = topic

    async def send(self, reports: Sequence[NodeReport]) -> None:
        # Queue every report first, then wait for all acks: one round trip per batch.
        acks = [
            await self._producer.send(self._topic, encode(r), key=r.node_id.encode())
            for r in reports
        ]
        await asyncio.gather(*acks)


class TickListener(Protocol):
    """Called after every tick (the recycler's hook). Must return quickly: long work, such as
    a restart, runs in a task of its own."""

    async def on_tick(self, manager: ClusterManager, snapshot: Snapshot) -> None: ...


class _LatestPublisher:
    """Sends the newest report of each node, one batch at a time.

    Reports offered while a batch is in flight replace older ones of the same node, so a slow
    or absent broker never stalls sampling and never queues stale states: the topic is
    compacted, only each node's latest state matters. One batch at a time keeps a node's
    reports in order.
    """

    def __init__(self, sink: ReportSink) -> None:
        self._sink = sink
        self._pending: dict[str, NodeReport] = {}
        self._offered = 0
        self._acked = 0
        self._wake = asyncio.Event()
        self._acked_changed = asyncio.Condition()
        self._failing = False

    def offer(self, reports: Sequence[NodeReport]) -> int:
        """Queue reports; returns a ticket for `wait_acked`."""
        for report in reports:
            self._pending[report.node_id] = report
        self._offered += 1
        self._wake.set()
        return self._offered

    async def wait_acked(self, ticket: int, timeout_s: float) -> bool:
        """Whether everything offered up to `ticket` was acknowledged within `timeout_s`."""
        try:
            async with asyncio.timeout(timeout_s), self._acked_changed:
                await self._acked_changed.wait_for(lambda: self._acked >= ticket)
        except TimeoutError:
            return False
        return True

    @property
    def failing(self) -> bool:
        """Whether the last send failed (cleared by the next one that succeeds)."""
        return self._failing

    async def flush(self, timeout_s: float) -> bool:
        return await self.wait_acked(self._offered, timeout_s)

    async def run(self) -> None:
        while True:
            await self._wake.wait()
            self._wake.clear()
            batch, ticket = self._pending, self._offered
            self._pending = {}
            try:
                await self._sink.send(list(batch.values()))
            except Exception as error:  # any broker failure: keep the states, retry later
                if not self._failing:
                    log.warning("publish failed reports=%d error=%r", len(batch), error)
                self._failing = True
                for node_id, report in batch.items():
                    self._pending.setdefault(node_id, report)  # a newer one may have come
                self._wake.set()
                await asyncio.sleep(_PUBLISH_RETRY_S)
                continue
            if self._failing:
                log.info("publish recovered reports=%d", len(batch))
                self._failing = False
            async with self._acked_changed:
                self._acked = ticket
                self._acked_changed.notify_all()


# -- the manager -----------------------------------------------------------------------------


@dataclass
class _Track:
    """What the manager remembers of one pool node between ticks."""

    spec: NodeSpec
    memory: Ewma
    cpu: Ewma
    sampler: Sampler | None = None
    pid: int | None = None  # the pid `sampler` reads
    last_pid: int | None = None  # kept while the node is gone, to count a restart on return
    restarts: int = 0
    samples: int = 0
    memory_mb: float | None = None
    block: int | None = None
    lag: int | None = None
    down: DownReason | None = None
    cordoned: bool = False
    recycling: Lifecycle | None = None
    sampled_at: float = field(default_factory=time.time)


@dataclass(frozen=True)
class _Sampled:
    running: bool
    sample: ResourceSample | None
    error: str | None = None


class ClusterManager:
    """Samples the pool nodes of `cluster` every interval and publishes their states.

    Use as an async context manager: entering takes the first sample (so `reports()` and
    `snapshot()` are complete at once) and starts the loop; leaving stops it and flushes
    what is still unpublished. `sink` None publishes nothing.
    """

    def __init__(
        self,
        cluster: GethCluster,
        settings: ManagerSettings,
        sink: ReportSink | None = None,
        calibration: Calibration | None = None,
        *,
        event_sink: EventSink | None = None,
        recycle_state: RecycleState | None = None,
    ) -> None:
        self.cluster = cluster
        self.settings = settings
        self.calibration = calibration if calibration is not None else load_calibration(settings)
        self.max_lag = cluster.settings.max_lag if settings.max_lag is None else settings.max_lag
        self._scheduler = LBHScheduler.from_calibration(self.calibration)
        self._tracks = {
            spec.name: _Track(spec, Ewma(settings.alpha), Ewma(settings.alpha))
            for spec in pool_specs(cluster.settings)
        }
        self._publisher = _LatestPublisher(sink) if sink is not None else None
        self._listeners: list[TickListener] = []
        self._http: httpx.AsyncClient | None = None
        self._sampling: asyncio.Task[None] | None = None
        self._publishing: asyncio.Task[None] | None = None
        self._zones: dict[str, Zone] = {}
        self._distances: dict[str, float] = {}
        self._lbh = 0.0
        self._head: int | None = None
        self._ticks = 0
        self._tick_seconds = 0.0
        self._ticked_at: float | None = None  # loop time of the last tick's end
        # (wall time, LBH) of the recent ticks: what the operator's chart draws.
        self._lbh_history: deque[tuple[float, float]] = deque(maxlen=settings.lbh_history_ticks)
        # One tick at a time: a direct `tick()` call must not interleave with the loop's.
        self._tick_lock = asyncio.Lock()
        self.events = EventLog(settings.events_kept, event_sink, settings.publish_timeout_s)
        # Always there for the operator's restarts; automatic only with `settings.recycle`.
        # The drain's in-flight feedback, when the providers' URLs are known.
        self._inflight = (
            ProviderInflight(settings.provider_urls) if settings.provider_urls else None
        )
        self.recycler = Recycler(
            self,
            settings,
            self.events,
            automatic=settings.recycle,
            state=recycle_state,
            inflight=self._inflight,
        )
        self._listeners.append(self.recycler)
        # After the recycler: a node it picks this tick is marked before the healer looks.
        self.healer = Healer(self, settings, self.events, enabled=settings.heal)
        self._listeners.append(self.healer)

    # -- life ------------------------------------------------------------------------------

    async def __aenter__(self) -> ClusterManager:
        self._http = httpx.AsyncClient(timeout=self.settings.rpc_timeout_s)
        if self._publisher is not None:
            self._publishing = asyncio.create_task(self._publisher.run(), name="manager-publish")
        try:
            await self.tick()
        except BaseException:
            await self._close()
            raise
        self._sampling = asyncio.create_task(self._loop(), name="manager-sample")
        log.info(
            "manager started nodes=%s interval_s=%.2f alpha=%.2f max_lag=%d "
            "dis_avemin=%.4f dis_avemax=%.4f publish=%s",
            ",".join(self._tracks),
            self.settings.sample_interval_s,
            self.settings.alpha,
            self.max_lag,
            self.calibration.dis_avemin,
            self.calibration.dis_avemax,
            self._publisher is not None,
        )
        return self

    async def __aexit__(self, *exc_info: object) -> None:
        await self._close()
        log.info("manager stopped ticks=%d", self._ticks)

    async def _close(self) -> None:
        # Stop sampling first, then give the last states a bounded chance to reach Kafka.
        await _cancel(self._sampling)
        self._sampling = None
        # A restart under way ends first (a node between stop and start is started again),
        # while its last states can still be published.
        await self.recycler.aclose()
        await self.healer.aclose()
        if self._publisher is not None and self._publishing is not None:
            if not await self._publisher.flush(self.settings.publish_timeout_s):
                log.warning("manager stopped with unpublished states")
            await _cancel(self._publishing)
            self._publishing = None
        if self._http is not None:
            await self._http.aclose()
            self._http = None
        if self._inflight is not None:
            await self._inflight.aclose()

    def seconds_since_tick(self) -> float | None:
        """How long ago the last tick ended (None before the first): a liveness figure."""
        if self._ticked_at is None:
            return None
        return asyncio.get_running_loop().time() - self._ticked_at

    @property
    def publishing_ok(self) -> bool:
        """False while Kafka refuses the reports (the states wait and go out on recovery)."""
        return self._publisher is None or not self._publisher.failing

    def add_listener(self, listener: TickListener) -> None:
        """Call `listener.on_tick` after every tick, in the order added."""
        self._listeners.append(listener)

    async def _loop(self) -> None:
        loop = asyncio.get_running_loop()
        interval = self.settings.sample_interval_s
        next_at = loop.time() + interval
        while True:
            await asyncio.sleep(max(0.0, next_at - loop.time()))
            try:
                await self.tick()
            except Exception:  # a bug in one tick must not end the service; the next may work
                log.exception("tick failed")
            next_at += interval
            behind = loop.time() - next_at
            if behind > 0:
                # Keep the rhythm instead of firing the missed ticks back to back.
                skipped = math.ceil(behind / interval)
                next_at += skipped * interval
                log.warning("tick overran skipped=%d interval_s=%.2f", skipped, interval)

    # -- one tick ----------------------------------------------------------------------------

    async def tick(self) -> Snapshot:
        """Sample every node once, publish the reports and return the new snapshot."""
        async with self._tick_lock:
            snapshot = await self._tick()
        for listener in self._listeners:
            try:
                await listener.on_tick(self, snapshot)
            except Exception:  # the recycler's bug must not stop the sampling
                log.exception("tick listener failed listener=%r", listener)
        return snapshot

    async def _tick(self) -> Snapshot:
        loop = asyncio.get_running_loop()
        started = loop.time()
        tracks = list(self._tracks.values())
        # The sealer's head counts even when it is not in the pool: it is where blocks start.
        heads, sampled = await asyncio.gather(
            asyncio.gather(*(self._read_head(spec) for spec in self.cluster.specs)),
            asyncio.gather(*(self._sample(track) for track in tracks)),
        )
        now = time.time()
        by_name = {spec.name: h for spec, h in zip(self.cluster.specs, heads, strict=True)}
        self._head = max((h.head for h in heads if h is not None), default=None)
        for track, outcome in zip(tracks, sampled, strict=True):
            self._apply(track, outcome, by_name.get(track.spec.name), now)
        self._zone()
        self._lbh_history.append((now, self._lbh))
        self._ticks += 1
        self._ticked_at = loop.time()
        self._tick_seconds = self._ticked_at - started
        if self._publisher is not None:
            self._publisher.offer([self._report(t) for t in tracks])
        return self.snapshot()

    async def _read_head(self, spec: NodeSpec) -> ChainPosition | None:
        if self._http is None:
            raise RuntimeError("ClusterManager used outside `async with`")
        try:
            # httpx's timeout bounds each phase; this bounds each whole ask.
            return await settled_chain_position(
                self._http, spec.rpc_url, self.settings.rpc_timeout_s
            )
        except Exception:  # silent, refused, garbled: each means "does not answer"
            return None

    async def _sample(self, track: _Track) -> _Sampled:
        spec = track.spec
        try:
            pid = self.cluster.runtime.pid(spec)
            if pid is None:
                track.sampler = track.pid = None
                return _Sampled(running=False, sample=None)
            if track.sampler is None or pid != track.pid:
                # A new process (first sight, or a restart): a new sampler, fresh averages,
                # because the old process's load says nothing about this one.
                if track.last_pid is not None and pid != track.last_pid:
                    track.restarts += 1
                track.sampler = self.cluster.runtime.sampler(
                    spec,
                    self.cluster.settings.node_memory_budget_mb,
                    self.cluster.settings.cpu_cores_of(spec.name),
                )
                track.pid = track.last_pid = pid
                track.memory.reset()
                track.cpu.reset()
            sampler = track.sampler
            if isinstance(sampler, _INLINE_SAMPLERS):
                sample = sampler.sample()
            else:
                sample = await asyncio.to_thread(sampler.sample)
        except Exception as error:  # one node's failure must not stop the others' reports
            track.sampler = track.pid = None  # re-created next tick
            return _Sampled(running=True, sample=None, error=repr(error))
        return _Sampled(running=True, sample=sample)

    def _apply(
        self, track: _Track, outcome: _Sampled, position: ChainPosition | None, now: float
    ) -> None:
        returning = track.down is not None or track.block is None
        block = None if position is None else position.head
        track.sampled_at = now
        track.block = block
        track.lag = None if block is None or self._head is None else self._head - block
        if outcome.sample is not None:
            track.memory.update(outcome.sample.memory)
            track.cpu.update(outcome.sample.cpu)
            track.memory_mb = outcome.sample.memory_mb
            track.samples += 1
        else:
            # No reading: the node is DOWN; its old averages would misdescribe its return.
            track.memory.reset()
            track.cpu.reset()
            track.memory_mb = None
        reason = down_reason(
            running=outcome.running,
            sampled=outcome.sample is not None,
            block=block,
            head=self._head,
            max_lag=self.max_lag,
            returning=returning,
            pending_is_stale=position is not None and position.pending_is_stale,
        )
        if reason != track.down:
            if reason is None:
                log.info("node_up", node=track.spec.name, block=block)
            else:
                log.warning(
                    "node_down",
                    node=track.spec.name,
                    reason=reason,
                    block=block,
                    head=self._head,
                    error=outcome.error,
                )
        track.down = reason

    def _zone(self) -> None:
        states = [
            NodeState(
                node_id=name,
                memory=_unit(track.memory.value or 0.0),
                cpu=_unit(track.cpu.value or 0.0),
                free_memory_mb=self._free_memory_mb(track),
                down=track.down is not None,
            )
            for name, track in self._tracks.items()
        ]
        plan = self._scheduler.plan(states, [])
        self._zones, self._distances, self._lbh = plan.zones, plan.distances, plan.lbh

    def _free_memory_mb(self, track: _Track) -> float | None:
        # The latest reading, not an average: memory is a level, not a rate, and the
        # schedulers' capacity check wants the freshest figure. Negative when over budget.
        if track.memory_mb is None:
            return None
        return self.cluster.settings.node_memory_budget_mb - track.memory_mb

    def _report(self, track: _Track) -> NodeReport:
        return NodeReport(
            node_id=track.spec.name,
            rpc_url=track.spec.rpc_url,
            memory=_unit(track.memory.value or 0.0),
            cpu=_unit(track.cpu.value or 0.0),
            free_memory_mb=self._free_memory_mb(track),
            block=track.block,
            lag=track.lag,
            lifecycle=self._lifecycle(track),
            restarts=track.restarts,
            sampled_at=track.sampled_at,
        )

    @staticmethod
    def _lifecycle(track: _Track) -> Lifecycle:
        return effective_lifecycle(track.down, cordoned=track.cordoned, recycling=track.recycling)

    # -- reading -----------------------------------------------------------------------------

    def reports(self) -> dict[str, NodeReport]:
        """The current report of every pool node, by node id."""
        return {name: self._report(track) for name, track in self._tracks.items()}

    def snapshot(self) -> Snapshot:
        """The operator view: every pool node with zone and distance, LBH and the bounds."""
        nodes = tuple(
            NodeSnapshot(
                node_id=name,
                lifecycle=self._lifecycle(track),
                zone=self._zones.get(name, Zone.DOWN),
                distance=self._distances.get(name, 0.0),
                memory=_unit(track.memory.value or 0.0),
                cpu=_unit(track.cpu.value or 0.0),
                memory_mb=track.memory_mb,
                free_memory_mb=self._free_memory_mb(track),
                block=track.block,
                lag=track.lag,
                down_reason=track.down,
                cordoned=track.cordoned,
                restarts=track.restarts,
                samples=track.samples,
                sampled_at=track.sampled_at,
            )
            for name, track in self._tracks.items()
        )
        return Snapshot(
            nodes=nodes,
            lbh=self._lbh,
            paused=self._lbh < 0.0,
            dis_avemin=self.calibration.dis_avemin,
            dis_avemax=self.calibration.dis_avemax,
            dis_ave=self.calibration.dis_ave,
            head=self._head,
            ticks=self._ticks,
            tick_seconds=self._tick_seconds,
            taken_at=time.time(),
        )

    def lbh_history(self) -> list[tuple[float, float]]:
        """(wall time, LBH) of the recent ticks, oldest first; LBH < 0 was a paused tick."""
        return list(self._lbh_history)

    # -- life-cycle marks --------------------------------------------------------------------

    def _track(self, node_id: str) -> _Track:
        try:
            return self._tracks[node_id]
        except KeyError:
            known = ", ".join(self._tracks)
            raise UnknownNodeError(f"no pool node named {node_id!r} (pool: {known})") from None

    async def cordon(self, node_id: str, reason: str | None = None, detail: str = "") -> NodeReport:
        """Take a node out of routing without a restart; returns once the state is published.
        `reason` None is the operator's cordon; the healer's says `crashloop`."""
        track = self._track(node_id)
        track.cordoned = True
        log.info("node_cordoned", node=node_id, reason=reason or "operator")
        report = await self._publish_now(track)
        await self.events.record(node_id, EventKind.CORDONED, reason, detail)
        return report

    async def uncordon(self, node_id: str) -> NodeReport:
        """Return a cordoned node to routing (UP when it is healthy); published at once."""
        track = self._track(node_id)
        track.cordoned = False
        log.info("node_uncordoned", node=node_id)
        report = await self._publish_now(track)
        await self.events.record(node_id, EventKind.UNCORDONED)
        return report

    async def set_recycle_state(self, node_id: str, state: Lifecycle | None) -> NodeReport:
        """The recycler's hook: mark a node DRAINING, RESTARTING or SYNCING, or clear the mark
        (None) when it is re-admitted; published at once."""
        if state is not None and state not in RECYCLE_STATES:
            allowed = ", ".join(sorted(s.value for s in RECYCLE_STATES))
            raise ValueError(f"recycle state must be one of {allowed} or None, got {state!r}")
        track = self._track(node_id)
        track.recycling = state
        log.info("node_recycle_state", node=node_id, state=state or "none")
        return await self._publish_now(track)

    async def _publish_now(self, track: _Track) -> NodeReport:
        report = self._report(track)
        if self._publisher is not None:
            ticket = self._publisher.offer([report])
            if not await self._publisher.wait_acked(ticket, self.settings.publish_timeout_s):
                # The state stands and goes out when Kafka is back; the caller is not failed.
                log.warning(
                    "publish slow node=%s lifecycle=%s timeout_s=%.1f",
                    report.node_id,
                    report.lifecycle,
                    self.settings.publish_timeout_s,
                )
        return report


async def _cancel(task: asyncio.Task[None] | None) -> None:
    if task is None:
        return
    task.cancel()
    with contextlib.suppress(asyncio.CancelledError):
        await task


# -- running it ------------------------------------------------------------------------------


@asynccontextmanager
async def open_manager(
    cluster: GethCluster,
    kafka_settings: KafkaSettings,
    settings: ManagerSettings,
    *,
    recycle_state: RecycleState | None = None,
) -> AsyncIterator[ClusterManager]:
    """A running manager (first tick taken) publishing node states and events to Kafka unless
    `settings.publish` is off, recycling zone III nodes when `settings.recycle` is on; stopped,
    with its last states flushed, on exit. `recycle_state`: the recycle policy's starting memory
    (for example cool-downs already running). With `publish` and `chain_feed` on, the chain
    feed runs beside it (geth_cluster/chain_feed.py)."""
    async with contextlib.AsyncExitStack() as stack:
        sink: ReportSink | None = None
        event_sink: EventSink | None = None
        producer: Any = None
        if settings.publish:
            # Not idempotent: a node state is the latest value of its key on a compacted topic,
            # so a duplicate is harmless, while aiokafka's idempotent producer stops for good
            # after an OutOfOrderSequenceNumber (a broker restarted under it; aiokafka#1017),
            # and this producer has to keep publishing for the life of the stack.
            producer = await stack.enter_async_context(
                kafka_producer(kafka_settings, enable_idempotence=False)
            )
            sink = KafkaReportSink(producer, kafka_settings.topic_node_states)
            event_sink = KafkaEventSink(producer, kafka_settings.topic_events)
        running = ClusterManager(
            cluster, settings, sink, event_sink=event_sink, recycle_state=recycle_state
        )
        manager = await stack.enter_async_context(running)
        if producer is not None and settings.chain_feed:
            await stack.enter_async_context(
                await open_chain_feed(manager, kafka_settings, producer, stack)
            )
        yield manager


async def open_chain_feed(
    manager: ClusterManager,
    kafka_settings: KafkaSettings,
    producer: Any,
    stack: contextlib.AsyncExitStack,
) -> ChainFeed:
    """The chain feed over the manager's view of the nodes, continuing after the topic's last
    block, publishing with `producer`; its HTTP client is closed by `stack`."""
    settings = manager.settings
    http = httpx.AsyncClient(timeout=settings.chain_feed_rpc_timeout_s, trust_env=False)
    stack.push_async_callback(http.aclose)
    follower = ChainFollower(
        NodeBlockReader(http, settings.chain_feed_rpc_timeout_s),
        KafkaHeadSink(producer, kafka_settings.topic_chain_heads),
        lambda: readable_sources(manager.reports().values()),
        last_published=await last_published(kafka_settings),
        max_backfill=settings.chain_feed_max_backfill,
        rest_s=settings.chain_feed_rest_s,
    )
    return ChainFeed(follower, settings.chain_feed_poll_s)


async def run_manager(
    cluster: GethCluster,
    kafka_settings: KafkaSettings,
    manager_settings: ManagerSettings,
    stop_event: asyncio.Event,
) -> None:
    """Run the manager until `stop_event` is set (what `ethgw up` calls, as a task)."""
    async with open_manager(cluster, kafka_settings, manager_settings):
        await stop_event.wait()


async def _main() -> None:
    # Imported here: the launcher's toolchain paths are needed only when run standalone.
    from geth_cluster.runtimes import make_runtime
    from geth_cluster.toolchain import geth_binary

    stop = asyncio.Event()
    loop = asyncio.get_running_loop()
    for sig in (signal.SIGINT, signal.SIGTERM):
        loop.add_signal_handler(sig, stop.set)
    settings = ClusterSettings()
    cluster = GethCluster(settings, make_runtime(settings, geth_binary()))
    try:
        await run_manager(cluster, KafkaSettings(), ManagerSettings(), stop)
    finally:
        await cluster.aclose()


def main() -> None:
    """`python -m geth_cluster.manager`: watch the running local cluster until Ctrl-C."""
    from service_kit.logs import configure_logging

    configure_logging()
    asyncio.run(_main())


if __name__ == "__main__":
    main()
