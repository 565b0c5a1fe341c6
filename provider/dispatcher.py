"""The provider's round loop: pull tasks, plan with the scheduler, execute, report.

One round = the tasks this provider holds (new and previously held) planned
against the latest node states. Held tasks stay in memory, and their offsets
stay uncommitted, until a later round dispatches them: nothing is dropped, and
a crash redelivers them. Results are published before offsets are committed.
"""

from __future__ import annotations

import asyncio
import contextlib
import contextvars
import time
from collections.abc import Callable, Iterable, Mapping, Sequence
from dataclasses import dataclass
from typing import Protocol, runtime_checkable

import structlog
from aiokafka import TopicPartition
from pydantic import ValidationError

from balancer import Decision, NodeState, Plan, Strategy, Task, Zone, forced_reads
from ethgw_wire.errors import (
    InsufficientFundsError,
    InvalidParamsError,
    NodeBehindError,
    NodeUnavailableError,
    NotFoundError,
    ResultTooLargeError,
    TaskError,
    UnknownOperationTaskError,
)
from ethgw_wire.kafka import RECORD_REFUSED, encode
from ethgw_wire.messages import ErrorInfo, ResultMessage, TaskMessage, TaskStatus, Timings
from ethgw_wire.operations import Operation, Params, UnknownOperationError, get_operation
from ethgw_wire.sealing import TaskOpener
from provider import metrics
from provider.chain import NodeClient, NodeUnreachableError
from provider.config import ProviderSettings
from provider.freshness import SeenMined, required_block
from provider.handlers import Handler, Job
from provider.inflight import InflightBook
from provider.journal_pruning import JournalPruner
from provider.nodes import NodeView
from provider.offsets import OffsetBook
from provider.recycle_requests import RecycleRequests
from provider.service_times import ServiceTimes
from provider.task_stream import ResultSink, TaskRecord, TaskSource
from service_kit.logs import get_logger

log = get_logger("ethgw.provider")

# Between two asks of the nodes' heads while a read waits for a block (Clique seals every 1 s).
_HEAD_POLL_S = 0.1

_ZONE_CODE = {Zone.I: 1, Zone.II: 2, Zone.III: 3, Zone.DOWN: 0}


@runtime_checkable
class ClockedStrategy(Protocol):
    """A strategy that plans with a clock and keeps its own state between rounds (lbh_adaptive).

    Its decision carries its own safety valve's assignments and the node it wants recycled,
    so the dispatcher applies the decision as it is, with no valve of its own.
    """

    def decide(
        self,
        nodes: Sequence[NodeState],
        tasks: Sequence[Task],
        *,
        now: float,
        sampled_inflight: Mapping[str, int],
        service_s: Mapping[str, float],
    ) -> Decision:
        """Place one round's tasks at `now`; `sampled_inflight`: each node's in-flight count
        when its report was sampled; `service_s`: each node's recent service time (seconds)."""
        ...


@dataclass(frozen=True)
class Pending:
    """A task this provider holds, with where it came from."""

    message: TaskMessage
    operation: Operation
    params: Params
    tp: TopicPartition
    offset: int

    def as_task(self) -> Task:
        return Task(
            task_id=self.message.task_id,
            cls=self.operation.task_class,
            account=self.message.account,
            enqueued_at=self.message.enqueued_at,
        )


class Dispatcher:
    def __init__(
        self,
        tasks: TaskSource,
        results: ResultSink,
        strategy: Strategy,
        nodes: NodeView,
        node_client: Callable[[str], NodeClient],
        handlers: Mapping[str, Handler],
        pruner: JournalPruner,
        settings: ProviderSettings,
        recycle_requests: RecycleRequests | None = None,
        *,
        max_result_bytes: int,
        opener: TaskOpener | None = None,
        seen: SeenMined | None = None,
        min_block_wait_s: float = 5.0,
    ) -> None:
        """`opener` opens the tasks' sealed secrets and refuses one in clear; None: the
        parameters are taken as they are (tests of the logic above it). `seen`: the blocks
        of what the node clients saw mined (read your writes); a read naming one waits up to
        `min_block_wait_s` for a node that has it."""
        self._seen = seen or SeenMined(1)
        self._min_block_wait_s = min_block_wait_s
        self._opener = opener
        self._pruner = pruner
        self._max_result_bytes = max_result_bytes  # KafkaSettings.max_result_bytes
        self._tasks = tasks
        self._results = results
        self._strategy = strategy
        # Checked once here: a clocked strategy's rounds go through `decide`, the others' `plan`.
        self._clocked = strategy if isinstance(strategy, ClockedStrategy) else None
        self._recycle_requests = recycle_requests or RecycleRequests(None, 0.0)
        self._nodes = nodes
        self._node_client = node_client  # by RPC URL
        self._handlers = handlers  # by operation name
        self._settings = settings
        self._pending: list[Pending] = []
        self._running: dict[str, tuple[Pending, asyncio.Task[None]]] = {}
        self._inflight = InflightBook(keep_s=settings.node_stale_s)
        self._service = ServiceTimes()
        self._offsets = OffsetBook()
        self._slots = asyncio.Semaphore(settings.concurrency)
        self._paused_since: float | None = None
        self._committed_at = time.monotonic()
        self.last_plan: Plan | None = None
        self.rounds = 0

    # -- the loop ------------------------------------------------------------------

    async def run(self, stop: asyncio.Event) -> None:
        while not stop.is_set():
            try:
                await self._step()
            except Exception as exc:
                # A broker restart or a rebalance mid-commit must not end the loop:
                # uncommitted work is simply redelivered.
                log.warning("round_failed", error=repr(exc))
                await asyncio.sleep(1.0)
        await self.drain(self._running_partitions(), self._settings.receipt_timeout_s)

    async def _step(self) -> None:
        fetched = await self._fetch()
        dispatched = self._round() if self._pending else 0
        if not fetched or self._commit_due():
            await self.commit()
        if self._pending and not dispatched:
            # Everything is held: wait for new node states rather than spin.
            await self._nodes.wait_changed(self._settings.idle_round_s)

    def _commit_due(self) -> bool:
        """While tasks keep coming, a commit once per commit_interval_s, not per round."""
        return time.monotonic() - self._committed_at >= self._settings.commit_interval_s

    async def _fetch(self) -> int:
        """Take new task records (as many as there is room for); how many came."""
        room = self._settings.max_outstanding - len(self._pending) - len(self._running)
        if room <= 0:
            await asyncio.sleep(self._settings.idle_round_s)
            return 0
        records = await self._tasks.fetch(room, self._settings.poll_timeout_ms)
        for record in records:
            self._offsets.received(record.partition, record.offset)
            await self._admit(record)
        return len(records)

    async def _admit(self, record: TaskRecord) -> None:
        """Validate a record into a pending task, or report why it cannot run."""
        tp = record.partition
        try:
            message = TaskMessage.model_validate_json(record.value or b"")
        except ValidationError:
            metrics.MALFORMED.inc()
            log.warning("malformed_task_skipped", partition=str(tp), offset=record.offset)
            self._offsets.finished(tp, record.offset)
            return
        try:
            operation = get_operation(message.operation)
            given = message.params if self._opener is None else self._opener.task_params(message)
            params = operation.params.model_validate(given)
        except InvalidParamsError as refused:
            await self._report_failure(message, tp, record.offset, refused)
            return
        except UnknownOperationError:
            error: TaskError = UnknownOperationTaskError(
                f"unknown operation {message.operation!r}", field="operation"
            )
            await self._report_failure(message, tp, record.offset, error)
            return
        except ValidationError as exc:
            first = exc.errors()[0]
            field = ".".join(str(part) for part in first["loc"]) or None
            error = InvalidParamsError(f"{field}: {first['msg']}", field=field)
            await self._report_failure(message, tp, record.offset, error)
            return
        self._pending.append(Pending(message, operation, params, tp, record.offset))

    async def _report_failure(
        self, message: TaskMessage, tp: TopicPartition, offset: int, error: TaskError
    ) -> None:
        await self._publish(self._result(message, TaskStatus.FAILED, error=error.info()))
        metrics.TASKS.labels(message.operation[:64], TaskStatus.FAILED.value).inc()
        self._offsets.finished(tp, offset)

    # -- one round -----------------------------------------------------------------

    def _round(self) -> int:
        now = time.time()
        states = self._nodes.states(self._inflight.counts, now)
        tasks = [p.as_task() for p in self._pending]
        if self._clocked is not None:
            assignments = self._decide(self._clocked, states, tasks, now)
        else:
            assignments = self._plan(states, tasks, now)
        by_id = {p.message.task_id: p for p in self._pending}
        zones = self.last_plan.zones if self.last_plan is not None else {}
        for task_id, node_id in assignments:
            pending = by_id.pop(task_id)
            zone = zones.get(node_id, Zone.DOWN)
            metrics.DISPATCHED.labels(node_id, zone.value, pending.operation.task_class.value).inc()
            self._start(pending, node_id, now)
        self._pending = [p for p in self._pending if p.message.task_id in by_id]
        metrics.HELD.set(len(self._pending))
        return len(assignments)

    def _plan(
        self, states: list[NodeState], tasks: list[Task], now: float
    ) -> list[tuple[str, str]]:
        """A round of a strategy without a clock, with lbh-spec's safety valve around it."""
        plan = self._strategy.plan(states, tasks)
        self._planned(plan, now)
        return self._safety_valve(states, tasks, now) if plan.paused else plan.assignments

    def _decide(
        self, strategy: ClockedStrategy, states: list[NodeState], tasks: list[Task], now: float
    ) -> list[tuple[str, str]]:
        """A round of a clocked strategy: its decision (its valve's reads included) as it is."""
        sampled = self._inflight.at_samples(self._sample_times(states))
        decision = strategy.decide(
            states, tasks, now=now, sampled_inflight=sampled, service_s=self._service.at(now)
        )
        self._planned(decision.plan, now)
        metrics.FORCED.inc(len(decision.forced))
        if decision.recycle_now is not None:
            self._recycle_requests.request(decision.recycle_now, now, decision.plan.lbh)
        return decision.plan.assignments

    def _sample_times(self, states: list[NodeState]) -> list[tuple[str, float]]:
        """(node id, sampled_at) of each node's report, for the in-flight count at its sample."""
        reports = ((s.node_id, self._nodes.report(s.node_id)) for s in states)
        return [(node_id, report.sampled_at) for node_id, report in reports if report is not None]

    def _planned(self, plan: Plan, now: float) -> None:
        """Keep and export the round's plan, and account for a pause."""
        self.last_plan = plan
        self.rounds += 1
        self._export(plan)
        if not plan.paused:
            self._paused_since = None
            return
        if self._paused_since is None:
            self._paused_since = now
            log.info("dispatch_paused", lbh=round(plan.lbh, 3))
        metrics.PAUSED_SECONDS.inc(self._settings.idle_round_s)

    def _safety_valve(
        self,
        states: list[NodeState],
        tasks: list[Task],
        now: float,
    ) -> list[tuple[str, str]]:
        """While paused, nothing moves, until max_pause has passed: then reads go out."""
        since = now if self._paused_since is None else self._paused_since
        if now - since < self._settings.max_pause_s:
            return []
        forced = forced_reads(states, tasks)
        metrics.FORCED.inc(len(forced))
        return forced

    def _export(self, plan: Plan) -> None:
        metrics.LBH.set(plan.lbh)
        for node_id, zone in plan.zones.items():
            metrics.NODE_ZONE.labels(node_id).set(_ZONE_CODE[zone])
            metrics.NODE_DISTANCE.labels(node_id).set(plan.distances.get(node_id, 0.0))

    def _start(self, pending: Pending, node_id: str, now: float) -> None:
        metrics.INFLIGHT.labels(node_id).set(self._inflight.started(node_id, now))
        context = _task_context(pending.message)
        task = asyncio.create_task(self._execute(pending, node_id), context=context)
        self._running[pending.message.task_id] = (pending, task)

    # -- execution -----------------------------------------------------------------

    async def _execute(self, pending: Pending, node_id: str) -> None:
        message = pending.message
        started = time.time()
        slot = _Slot(self._slots)
        node_done = self._release_once(node_id, slot)
        try:
            await slot.take()
            started = time.time()
            data, used = await self._on_nodes(pending, node_id, node_done)
            result = self._result(message, TaskStatus.SUCCEEDED, data=data, node=used)
        except TaskError as exc:
            result = self._result(message, TaskStatus.FAILED, error=exc.info(), node=node_id)
        except Exception as exc:
            log.exception("task_crashed", operation=message.operation)
            error = ErrorInfo(code="internal", message=f"{type(exc).__name__}: {exc}")
            result = self._result(message, TaskStatus.FAILED, error=error, node=node_id)
        finally:
            node_done()
        finished = time.time()
        result = result.model_copy(
            update={
                "timings": Timings(
                    queued_s=max(0.0, started - message.enqueued_at), executed_s=finished - started
                )
            }
        )
        result = self._bounded(result)
        task_class = pending.operation.task_class.value
        metrics.QUEUE_WAIT.labels(task_class).observe(result.timings.queued_s)
        metrics.EXECUTION.labels(task_class, result.node or node_id).observe(
            result.timings.executed_s
        )
        metrics.TASKS.labels(message.operation, result.status.value).inc()
        log.debug(
            "task_done",
            operation=message.operation,
            status=result.status.value,
            node=result.node or node_id,
            queued_s=round(result.timings.queued_s, 4),
            executed_s=round(result.timings.executed_s, 4),
        )
        # The result must reach Kafka before the offset may be committed.
        await asyncio.shield(self._publish(result))
        self._offsets.finished(pending.tp, pending.offset)
        self._pruner.finished(pending.tp, pending.offset, message.task_id)
        self._running.pop(message.task_id, None)

    def _release_once(self, node_id: str, slot: _Slot) -> Callable[[], None]:
        """Ends a task's count in flight on its node, notes its service time there (if it got
        a slot) and gives its execution slot back: at the first call, later calls do nothing."""
        released = False

        def release() -> None:
            nonlocal released
            if not released:
                released = True
                now = time.time()
                if slot.taken_at is not None:
                    self._service.observe(node_id, now - slot.taken_at, now)
                slot.give_back()
                metrics.INFLIGHT.labels(node_id).set(self._inflight.finished(node_id, now))

        return release

    async def _on_nodes(
        self, pending: Pending, chosen: str, node_done: Callable[[], None]
    ) -> tuple[object, str]:
        """Run on the chosen node (or, for a read that needs a block it lacks, on one that
        has it); if it does not answer, on the next best (bounded).

        Retrying a write is safe: its signed bytes are in the journal, so the
        retry re-broadcasts the same transaction.
        """
        first = await self._node_with_block(pending, chosen)
        node_id: str | None = first
        tried: list[str] = []
        behind: NodeBehindError | None = None
        while node_id is not None and len(tried) < self._settings.read_attempts:
            tried.append(node_id)
            url = self._nodes.url(node_id)
            if url is None:
                break
            message = pending.message
            client = self._node_client(url)
            job = Job(message.task_id, pending.params, client, node_id, message.caller, node_done)
            try:
                return await self._handlers[pending.operation.name](job), node_id
            except NodeUnreachableError as exc:
                log.warning("node_did_not_answer", node=node_id, error=repr(exc))
                node_id = self._move_on(node_id, tried)
            except NodeBehindError as exc:
                # Nothing was signed yet: the next node may well be at the head.
                log.warning("node_behind", node=node_id, error=str(exc))
                behind = exc
                node_id = self._move_on(node_id, tried)
            except (NotFoundError, InsufficientFundsError) as exc:
                # From a node behind the chain either may be its lag speaking: a receipt of
                # the last block, or the sender's funding in it. A node at the highest head
                # known has the last word. A write asked again sends the bytes the journal
                # holds (or signs nothing yet), as any retry of a write.
                if isinstance(exc, NotFoundError) and pending.operation.is_write:
                    raise
                fresher = self._at_the_head(node_id, tried)
                if fresher is None:
                    raise
                log.info("answer_behind_the_head", node=node_id, asking=fresher, code=exc.code)
                metrics.RETRIES.labels(node_id).inc()
                node_id = fresher
        if behind is not None:
            raise behind
        raise NodeUnavailableError(f"no node answered (tried {', '.join(tried) or 'none'})")

    def _at_the_head(self, answered: str, tried: list[str]) -> str | None:
        """A node not yet tried that has the highest head known, when the node that
        `answered` may lack it; None when that node's answer stands."""
        highest = self._nodes.highest_head()
        now = time.time()
        if highest is None or self._nodes.has(answered, highest, now):
            return None
        return self._nodes.nearest(self._inflight.counts, now, exclude=tried, min_head=highest)

    async def _node_with_block(self, pending: Pending, chosen: str) -> str:
        """For a read that needs a block (read your writes): the chosen node if it has the
        block, else the nearest that has it or first reaches it within the wait; when none
        does in time, the chosen node. Any other task: the chosen node."""
        if pending.operation.is_write:
            return chosen
        need = required_block(
            pending.params, self._seen, self._nodes.highest_head(), pending.message.min_block
        )
        if need is None:
            return chosen
        if self._nodes.has(chosen, need, time.time()):
            metrics.MIN_BLOCK_READS.labels("chosen").inc()
            return chosen
        found, outcome = await self._first_with_block(need)
        metrics.MIN_BLOCK_READS.labels(outcome).inc()
        if found is None:
            log.warning(
                "no node has the block task=%s block=%d waited_s=%.1f",
                pending.message.task_id,
                need,
                self._min_block_wait_s,
            )
            return chosen
        return found

    async def _first_with_block(self, need: int) -> tuple[str | None, str]:
        """The nearest routable node that has block `need`, asking the nodes their head until
        one has it or the wait ends; and how: "rerouted" (at once), "waited" or "timed_out"."""
        deadline = time.monotonic() + self._min_block_wait_s
        outcome = "rerouted"
        while True:
            found = self._nodes.nearest(self._inflight.counts, time.time(), min_head=need)
            if found is not None:
                return found, outcome
            if time.monotonic() >= deadline:
                return None, "timed_out"
            # The reports are up to a sample old: ask the nodes their head (the clients
            # note it; identical asks in flight are made once).
            await self._probe_heads()
            if self._nodes.nearest(self._inflight.counts, time.time(), min_head=need) is None:
                outcome = "waited"
                await asyncio.sleep(_HEAD_POLL_S)

    async def _probe_heads(self) -> None:
        """Ask every routable node its head; the caching clients note the answers."""

        async def ask(url: str) -> None:
            with contextlib.suppress(NodeUnreachableError, TaskError):
                await self._node_client(url).request("eth_blockNumber", [])

        await asyncio.gather(*(ask(url) for url in self._nodes.routable_urls(time.time())))

    def _move_on(self, failed: str, tried: list[str]) -> str | None:
        """Leave out the node that failed for a while; the next best one to try, if any."""
        self._nodes.suspect(failed, time.time())
        metrics.RETRIES.labels(failed).inc()
        return self._nodes.nearest(self._inflight.counts, time.time(), exclude=tried)

    # -- results and offsets ---------------------------------------------------------

    def _result(
        self,
        message: TaskMessage,
        status: TaskStatus,
        *,
        data: object = None,
        error: ErrorInfo | None = None,
        node: str | None = None,
    ) -> ResultMessage:
        return ResultMessage(
            task_id=message.task_id,
            operation=message.operation,
            status=status,
            data=data,
            error=error,
            node=node,
            provider=self._settings.provider_id,
            request_id=message.request_id,
            reply_to=message.reply_to,
        )

    def _bounded(self, result: ResultMessage) -> ResultMessage:
        """The result, or a failed result_too_large one in its place when its record would
        pass max_result_bytes: Kafka would refuse it, however often it was sent."""
        size = len(encode(result))
        if size <= self._max_result_bytes:
            return result
        reason = (
            f"the result is {size} bytes, over the limit of {self._max_result_bytes} bytes;"
            " ask for less (a narrower block range, a call that returns less)"
        )
        return self._too_large(result, reason, size)

    def _too_large(self, result: ResultMessage, reason: str, size: int) -> ResultMessage:
        log.warning(
            "result_too_large",
            task_id=result.task_id,
            operation=result.operation,
            bytes=size,
            node=result.node,
        )
        metrics.RESULTS_TOO_LARGE.inc()
        error = ResultTooLargeError(reason).info()
        update = {"status": TaskStatus.FAILED, "data": None, "error": error}
        return result.model_copy(update=update)

    async def _publish(self, result: ResultMessage) -> None:
        """Publish, retrying while Kafka is away: a result is never given up. A record Kafka
        refuses for what it is (too large) is replaced by its failure, sent once."""
        delay = 0.2
        refused = False
        while True:
            try:
                await self._results.publish(result)
                return
            except RECORD_REFUSED as exc:
                if refused:
                    log.error("result_refused_by_kafka", task_id=result.task_id, error=repr(exc))
                    return
                refused = True
                reason = f"Kafka refused the result ({type(exc).__name__}); ask for less"
                result = self._too_large(result, reason, len(encode(result)))
            except Exception as exc:
                log.warning(
                    "result_not_published",
                    task_id=result.task_id,
                    error=repr(exc),
                    retry_s=round(delay, 1),
                )
                await asyncio.sleep(delay)
                delay = min(delay * 2, 5.0)

    async def commit(self) -> None:
        self._committed_at = time.monotonic()
        points = self._offsets.to_commit()
        assigned = self._tasks.assignment() if points else set()
        points = {tp: offset for tp, offset in points.items() if tp in assigned}
        if points:
            await self._tasks.commit(points)
            self._offsets.committed(points)
        # Not only after a commit: records kept until their transaction was mined are
        # tombstoned once it is, even when no task comes any more.
        if points or self._pruner.any_mined():
            await self._pruner.committed(points)

    # -- rebalancing -----------------------------------------------------------------

    def _running_partitions(self) -> set[TopicPartition]:
        return {pending.tp for pending, _ in self._running.values()}

    async def drain(self, partitions: Iterable[TopicPartition], timeout_s: float) -> None:
        """Before partitions go: finish their running tasks, commit, and forget their
        held tasks (the next owner gets them again from the committed offset)."""
        gone = set(partitions)
        running = [task for pending, task in self._running.values() if pending.tp in gone]
        if running:
            _, late = await asyncio.wait(running, timeout=timeout_s)
            if late:
                log.warning("drain_timed_out", running=len(late))
        with contextlib.suppress(Exception):
            await self.commit()
        self._pending = [p for p in self._pending if p.tp not in gone]
        self._offsets.drop(gone)
        self._pruner.drop(gone)

    @property
    def held(self) -> int:
        return len(self._pending)

    @property
    def running(self) -> int:
        return len(self._running)

    def service_s(self, now: float) -> Mapping[str, float]:
        """Each node's recent service time in seconds at `now`, as a clocked strategy gets it."""
        return self._service.at(now)

    @property
    def inflight(self) -> Mapping[str, int]:
        """Tasks counted in flight per node: started there, node work not yet done."""
        return self._inflight.counts


class _Slot:
    """One of the dispatcher's execution slots (`concurrency`), given back once, when the
    node's work ends: a write waiting for its block holds none, since the receipt watchers
    wait for all of them at the cost of one scan per block."""

    def __init__(self, slots: asyncio.Semaphore) -> None:
        self._slots = slots
        self._held = False
        self.taken_at: float | None = None  # when the slot was taken (None: not yet)

    async def take(self) -> None:
        await self._slots.acquire()
        self._held = True
        self.taken_at = time.time()

    def give_back(self) -> None:
        if self._held:
            self._held = False
            self._slots.release()


def _task_context(message: TaskMessage) -> contextvars.Context:
    """The context a task runs in: its id and its request's id on each of its log lines."""
    context = contextvars.copy_context()
    ids = {"task_id": message.task_id, "request_id": message.request_id}
    context.run(structlog.contextvars.bind_contextvars, **{k: v for k, v in ids.items() if v})
    return context
