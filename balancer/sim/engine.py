"""The discrete-event simulation: one strategy dispatching one trace over a simulated cluster.

Pure: a run is a function of its scenario and settings (the randomness is drawn once, in
`make_scenario`, from the generator the caller passes in), so every strategy sees the same
arrivals, the same noisy neighbour and the same calibration.

The dispatcher is the provider of architecture.md: every `round_s` it hands the waiting tasks
(oldest first, up to `max_batch`) to the strategy and sends what the plan assigns; held tasks
wait (in Kafka, in the real system). It applies the pause's safety valve. The sampler reads
every node each `sample_s`, smooths with an EWMA, and, for runs with recycling, feeds the zones
to RecyclePolicy; a named node drains, restarts and resyncs while it is DOWN. A node that runs
out of memory is killed and restarts the same way; the calls it held are re-queued. For
lbh_adaptive it keeps what the provider keeps: each node's peak EWMA of its calls' service
times (from the send to the end of the call), aged as the provider ages it.
"""

from __future__ import annotations

import bisect
import heapq
import math
from collections.abc import Iterable, Mapping, Sequence
from dataclasses import dataclass, field

import numpy as np

from balancer.adaptive import AdaptiveSettings, LBHAdaptive
from balancer.adaptive_rules import DEFAULT_SERVICE_DECAY_S, aged_service, decayed_mean
from balancer.calibration import Calibration, calibrate
from balancer.lbh import LBHScheduler, forced_reads
from balancer.plan import Strategy
from balancer.recycle import RecyclePolicy, RecycleState
from balancer.sim.node import NodeModel, Phase, SimNode
from balancer.sim.workload import KINDS, TASK_MEMORY_MB, Arrival, make_trace
from balancer.state import NodeState
from balancer.strategies import make_strategy
from balancer.tasks import Task


@dataclass(frozen=True, slots=True)
class SimConfig:
    """Every setting of a simulation, with its default."""

    nodes: int = 5
    rate: float = 160.0  # arrivals per second
    duration_s: float = 60.0  # arrivals stop after this
    burst: int = 500  # tasks arriving at once (the thesis's concurrent load)...
    burst_at_s: float = 20.0  # ...at this time
    slow_speed: float = 0.6  # the last node's host runs at this speed...
    speeds: tuple[float, ...] = ()  # ...unless every node's speed is given here
    creep_from: float = 0.0  # nodes start with leaked memory: a memory ratio drawn between...
    creep_to: float = 0.0  # ...these two (0, 0: fresh nodes)
    machine_cpu: bool = False  # every node's CPU figure is the machine's (the nodes' mean)...
    host_cpu: float = 0.0  # ...plus this ratio, other processes' share of the machine
    call_wait_s: float = 0.0  # time each call is in flight off the node's CPU (RPC, provider)
    noisy: bool = True  # the second node has a neighbour that comes and goes
    noise_capacity: float = 0.5  # capacity left to the node while the neighbour runs
    noise_on_s: float = 8.0  # mean time the neighbour runs (exponential)
    noise_off_s: float = 12.0  # mean time it stays away (exponential)
    round_s: float = 0.02  # dispatcher period
    max_batch: int = 500  # reads, and writes, per round at most (Kafka's max.poll.records)
    sample_s: float = 1.0  # node sampling period (spec section 1)
    alpha: float = 0.5  # EWMA weight of the newest sample (spec section 1)
    delta: float = 0.05  # LBH's d per task in flight
    max_pause_s: float = 5.0  # pause before the safety valve opens (spec section 4)
    restart_after: int = 3  # zone III samples before recycling (spec section 7)
    cooldown_s: float = 60.0  # between restarts of one node (spec section 7)
    drain_timeout_s: float = 10.0  # calls still running then are lost and re-queued
    restart_s: float = 5.0  # process restart
    sync_s: float = 3.0  # catching up with the chain head after a restart
    calibration_concurrency: int = 16  # calls in flight per node under the saturating load
    time_limit_s: float = 240.0  # a run not finished by then is cut off
    seed: int = 0  # seed of the random and p2c strategies
    model: NodeModel = field(default_factory=NodeModel)


@dataclass(frozen=True, slots=True)
class RunSpec:
    """One contestant: a strategy by name, with or without the recycling policy."""

    label: str
    strategy: str
    recycle: bool
    headroom: float = 0.0  # share of the memory budget the provider keeps out of free memory
    adaptive: AdaptiveSettings | None = None  # lbh_adaptive's settings (None: the defaults)


FIXED_DELTA_LABEL = "adaptive/fixed"
"""The run of lbh_adaptive with the spec's constant delta, as it was before the learnt one."""

DEFAULT_RUNS = (
    RunSpec("lbh", "lbh", recycle=True),
    RunSpec("lbh+headroom", "lbh", recycle=True, headroom=0.3),
    RunSpec("round_robin", "round_robin", recycle=False),
    RunSpec("random", "random", recycle=False),
    RunSpec("least_inflight", "least_inflight", recycle=False),
    RunSpec("p2c", "p2c", recycle=False),
    RunSpec("p2c+recycle", "p2c", recycle=True),
    RunSpec("single", "single", recycle=False),
    RunSpec("lbh_adaptive", "lbh_adaptive", recycle=True),
    RunSpec(
        FIXED_DELTA_LABEL,
        "lbh_adaptive",
        recycle=True,
        adaptive=AdaptiveSettings(learn_delta=False),
    ),
)
"""LBH as the spec has it (free memory = budget - used), LBH with 30% of the budget held back
from free memory, every baseline, p2c with LBH's recycling (to tell recycling's share of a
win from the placement's), and lbh_adaptive with LBH's recycling (its deadlock exit recycles
too), with its learnt delta and, as `adaptive/fixed`, with the spec's constant delta."""


@dataclass(frozen=True, slots=True)
class Scenario:
    """What every run of a comparison shares: trace, neighbour schedule, calibration."""

    name: str
    config: SimConfig
    trace: tuple[Arrival, ...]
    noise: tuple[tuple[float, int, float], ...]  # (time, node index, capacity left)
    calibration: Calibration
    start_leak_mb: tuple[float, ...] = ()  # leaked memory per node at the start (empty: none)


@dataclass(frozen=True, slots=True)
class Second:
    """One sampling interval of a run, for the charts."""

    t: float
    completed: int  # calls finished in the interval
    waiting: int  # tasks in the dispatcher's queue
    lbh: float  # cluster health at the sample (every run computes it, only LBH acts on it)


@dataclass(frozen=True, slots=True)
class RunResult:
    """The measures of one run."""

    scenario: str
    label: str
    rate: float
    tasks: int
    completed: int
    completion_s: float  # when the last task finished (nan if the run was cut off)
    throughput: float  # completed tasks per second of completion time (or of the time limit)
    p50_ms: float
    p95_ms: float
    p99_ms: float
    held: int  # distinct tasks a plan held at least once
    paused_s: float  # time the dispatcher spent paused
    forced: int  # reads sent by the safety valve
    recycles: int  # restarts ordered by the recycling policy
    crashes: int  # out-of-memory kills
    requeued: int  # calls lost in a kill or a drain timeout and sent again
    timeline: tuple[Second, ...]


def make_scenario(config: SimConfig, rng: np.random.Generator, name: str = "") -> Scenario:
    """Draw the trace and the neighbour's schedule; calibrate as the spec's section 2 says."""
    trace = make_trace(
        rng,
        rate=config.rate,
        duration_s=config.duration_s,
        burst=config.burst,
        burst_at_s=config.burst_at_s,
    )
    noise = _noise_schedule(config, rng)
    leaks = _start_leaks(config, rng)  # drawn last, so other scenarios' draws stay as they were
    return Scenario(name, config, tuple(trace), noise, _calibration(config), leaks)


def _start_leaks(config: SimConfig, rng: np.random.Generator) -> tuple[float, ...]:
    """Memory each node has leaked before the trace, as after hours of service; () if none."""
    if config.creep_to <= 0.0:
        return ()
    m = config.model
    ratios = rng.uniform(config.creep_from, config.creep_to, size=config.nodes)
    return tuple(max(0.0, r * m.budget_mb - m.base_mb) for r in ratios.tolist())


def node_speeds(config: SimConfig) -> tuple[float, ...]:
    """Each node's speed: `speeds` if given, else 1.0 and `slow_speed` for the last node."""
    if config.speeds:
        if len(config.speeds) != config.nodes:
            raise ValueError(f"speeds has {len(config.speeds)} values for {config.nodes} nodes")
        return config.speeds
    return tuple(config.slow_speed if i == config.nodes - 1 else 1.0 for i in range(config.nodes))


def _noise_schedule(
    config: SimConfig, rng: np.random.Generator
) -> tuple[tuple[float, int, float], ...]:
    """Alternating quiet and noisy spells on node index 1 until the time limit."""
    if not config.noisy or config.nodes < 2:
        return ()
    changes: list[tuple[float, int, float]] = []
    now, noisy = 0.0, False
    while True:
        now += float(rng.exponential(config.noise_on_s if noisy else config.noise_off_s))
        if now >= config.time_limit_s:
            return tuple(changes)
        noisy = not noisy
        changes.append((now, 1, config.noise_capacity if noisy else 1.0))


def _calibration(config: SimConfig) -> Calibration:
    """Idle set U1: fresh nodes with no load. Saturated set U2: fresh nodes at full CPU holding
    `calibration_concurrency` calls of the table 5.1 mix, which is where a closed-loop
    saturating load settles."""
    m = config.model
    mean_call_mb = sum(k.share * k.memory_mb for k in KINDS)
    idle = [(m.base_mb / m.budget_mb, m.idle_cpu)] * config.nodes
    busy_mb = m.base_mb + config.calibration_concurrency * mean_call_mb
    saturated = [(min(1.0, busy_mb / m.budget_mb), 1.0)] * config.nodes
    return calibrate(idle, saturated)


def run(scenario: Scenario, spec: RunSpec) -> RunResult:
    """Simulate `spec`'s strategy on `scenario` until every task is done or the time limit."""
    return _Run(scenario, spec).result()


def compare(scenario: Scenario, specs: Iterable[RunSpec] = DEFAULT_RUNS) -> list[RunResult]:
    """Every run of `specs` on the same scenario."""
    return [run(scenario, spec) for spec in specs]


# Event kinds, in the order they are handled when they share a time.
_FINISH, _NOISE, _BACK, _DRAIN_TIMEOUT, _SAMPLE, _ROUND = range(6)


class _Run:
    """The mutable state of one run; only `result()` is called from outside."""

    def __init__(self, scenario: Scenario, spec: RunSpec) -> None:
        c = self.config = scenario.config
        self.spec = spec
        self.scenario = scenario.name
        self.trace = scenario.trace
        self.strategy: Strategy = make_strategy(
            spec.strategy,
            dis_avemin=scenario.calibration.dis_avemin,
            dis_avemax=scenario.calibration.dis_avemax,
            delta=c.delta,
            task_memory_mb=TASK_MEMORY_MB,
            seed=c.seed,
            adaptive=spec.adaptive,
        )
        # Zones and health for the sampler: the same for every strategy.
        self.reader = LBHScheduler.from_calibration(scenario.calibration)
        self.policy = RecyclePolicy(c.restart_after, c.cooldown_s)
        self.recycle_state = RecycleState()
        leaks = scenario.start_leak_mb or (0.0,) * c.nodes
        self.nodes = [
            SimNode(f"n{i + 1}", c.model, speed=speed, leak_mb=leak, wait_s=c.call_wait_s)
            for i, (speed, leak) in enumerate(zip(node_speeds(c), leaks, strict=True))
        ]
        self.adaptive = self.strategy if isinstance(self.strategy, LBHAdaptive) else None
        self.sampled_inflight = {n.node_id: 0 for n in self.nodes}  # at each node's last sample
        # What the provider sees of each node's speed: the EWMA of its calls' service times.
        self.sent_at: dict[str, float] = {}  # task id -> when its call went to its node
        self.service_s: dict[str, float] = {}
        self.service_seen_at: dict[str, float] = {}
        self.smoothed: list[tuple[float, float] | None] = [None] * c.nodes
        self.resident_mb = [n.resident_mb for n in self.nodes]  # at the last sample
        self.cpu_mark = [0.0] * c.nodes
        self.demand_mb = [0.0] * c.nodes  # the scheduler's table, over calls in flight
        self.generation = [0] * c.nodes  # restarts so far, to drop stale drain timeouts
        self.events: list[tuple[float, int, int, int, float]] = []
        self._seq = 0
        self.next_arrival = 0
        # The two Kafka topics: a held write never blocks a read behind it.
        self.reads: list[Arrival] = []
        self.writes: list[Arrival] = []
        self.by_id = {a.task.task_id: a for a in self.trace}
        self.latencies: list[float] = []
        self.last_finish = 0.0
        self.admitted: dict[str, float] = {}  # task id -> first round that could send it
        self.first_sent: dict[str, float] = {}
        self.pause_since: float | None = None
        self.paused_s = 0.0
        self.forced = self.recycles = self.crashes = self.requeued = 0
        self.timeline: list[Second] = []
        self.done_in_second = 0
        self.index = {n.node_id: i for i, n in enumerate(self.nodes)}
        # Whether anything a plan depends on changed since the last round; if not, the last
        # plan stands and the round is skipped (which only saves time: same plan, same effect).
        self.dirty = True
        for at, node, capacity in scenario.noise:
            self._push(at, _NOISE, node, capacity)
        self._push(0.0, _ROUND)
        self._push(c.sample_s, _SAMPLE)

    # --- the loop -----------------------------------------------------------------------

    def result(self) -> RunResult:
        now = 0.0
        while self.events and len(self.latencies) < len(self.trace):
            now, kind, _, node, value = heapq.heappop(self.events)
            if now > self.config.time_limit_s:
                break
            self._handle(now, kind, node, value)
        return self._summary()

    def _push(self, at: float, kind: int, node: int = -1, value: float = 0.0) -> None:
        self._seq += 1
        heapq.heappush(self.events, (at, kind, self._seq, node, value))

    def _handle(self, now: float, kind: int, node: int, value: float) -> None:
        if kind != _ROUND:
            self.dirty = True
        if kind == _FINISH:
            self._finish(now, node, int(value))
        elif kind == _NOISE:
            self.nodes[node].set_noise(value, now)
            self._schedule(node)
        elif kind == _BACK:
            self._back(now, node)
        elif kind == _DRAIN_TIMEOUT:
            if self.generation[node] == int(value) and self.nodes[node].phase is Phase.DRAINING:
                self._restart(now, node)
        elif kind == _SAMPLE:
            self._sample(now)
            self._push(now + self.config.sample_s, _SAMPLE)
        else:
            self._dispatch(now)
            self._push(now + self.config.round_s, _ROUND)

    # --- nodes --------------------------------------------------------------------------

    def _schedule(self, i: int) -> None:
        at = self.nodes[i].next_finish()
        if math.isfinite(at):
            self._push(at, _FINISH, i, float(self.nodes[i].version))

    def _send(self, now: float, i: int, call: Arrival) -> None:
        node = self.nodes[i]
        node.add(call, now)
        self.first_sent.setdefault(call.task.task_id, now)
        self.sent_at[call.task.task_id] = now
        self.demand_mb[i] += TASK_MEMORY_MB[call.task.cls]
        if node.out_of_memory():
            self._crash(now, i)
        else:
            self._schedule(i)

    def _finish(self, now: float, i: int, version: int) -> None:
        node = self.nodes[i]
        if version != node.version:
            return  # the node changed since this completion was predicted
        for call in node.finish(now):
            self.demand_mb[i] -= TASK_MEMORY_MB[call.task.cls]
            self.latencies.append(now - call.task.enqueued_at)
            self._observe_service(node.node_id, now - self.sent_at.pop(call.task.task_id), now)
            self.last_finish = now
            self.done_in_second += 1
        if not node.inflight:
            self.demand_mb[i] = 0.0
        if node.out_of_memory():  # the leak alone can push it over
            self._crash(now, i)
        elif node.phase is Phase.DRAINING and not node.inflight:
            self._restart(now, i)
        else:
            self._schedule(i)

    def _observe_service(self, node_id: str, took_s: float, now: float) -> None:
        """Fold one call's service time into its node's EWMA, as the provider does."""
        elapsed = now - self.service_seen_at.get(node_id, now)
        previous = self.service_s.get(node_id)
        decay = DEFAULT_SERVICE_DECAY_S
        self.service_s[node_id] = decayed_mean(previous, took_s, elapsed, decay)
        self.service_seen_at[node_id] = now

    def _crash(self, now: float, i: int) -> None:
        self.crashes += 1
        self._restart(now, i)

    def _restart(self, now: float, i: int) -> None:
        """Kill the process (calls still in flight are re-queued) and bring it back later."""
        lost = self.nodes[i].kill(now)
        self.requeued += len(lost)
        self.demand_mb[i] = 0.0
        if lost:
            self._requeue(lost)
        self.nodes[i].phase = Phase.RESTARTING
        self.smoothed[i] = None
        self.generation[i] += 1
        self._push(now + self.config.restart_s + self.config.sync_s, _BACK, i)

    def _back(self, now: float, i: int) -> None:
        node = self.nodes[i]
        node.phase = Phase.UP
        node.advance(now)
        self.cpu_mark[i] = node.cpu_s
        self.resident_mb[i] = node.resident_mb
        self.sampled_inflight[node.node_id] = 0
        if self.recycle_state.restarting == node.node_id:
            self.recycle_state = self.policy.finished(self.recycle_state, node.node_id, now)

    # --- sampler and recycling ------------------------------------------------------------

    def _sample(self, now: float) -> None:
        alpha = self.config.alpha
        raw: dict[int, tuple[float, float]] = {}
        for i, node in enumerate(self.nodes):
            node.advance(now)
            if node.phase is Phase.RESTARTING:
                continue
            raw[i] = node.sample(self.cpu_mark[i], self.config.sample_s)
            self.cpu_mark[i] = node.cpu_s
            self.resident_mb[i] = node.resident_mb
            self.sampled_inflight[node.node_id] = node.inflight
        for i, (m, c) in reported_figures(raw, self.config).items():
            old = self.smoothed[i]
            self.smoothed[i] = (m, c) if old is None else _ewma(old, (m, c), alpha)
        reading = self.reader.plan(self._states(), [])
        waiting = len(self.reads) + len(self.writes)
        self.timeline.append(Second(now, self.done_in_second, waiting, reading.lbh))
        self.done_in_second = 0
        if self.spec.recycle:
            self.recycle_state, name = self.policy.observe(self.recycle_state, reading.zones, now)
            if name is not None:
                self._drain(now, self.index[name])

    def _drain(self, now: float, i: int) -> None:
        self.recycles += 1
        self.nodes[i].phase = Phase.DRAINING
        if not self.nodes[i].inflight:
            self._restart(now, i)
        else:
            self._push(now + self.config.drain_timeout_s, _DRAIN_TIMEOUT, i, self.generation[i])

    def _states(self) -> list[NodeState]:
        m = self.config.model
        usable_mb = m.budget_mb * (1.0 - self.spec.headroom)
        states = []
        for i, node in enumerate(self.nodes):
            memory, cpu = self.smoothed[i] or (node.resident_mb / m.budget_mb, m.idle_cpu)
            states.append(
                NodeState(
                    node.node_id,
                    memory,
                    cpu,
                    inflight=node.inflight,
                    free_memory_mb=usable_mb - self.resident_mb[i] - self.demand_mb[i],
                    down=node.phase is not Phase.UP,
                )
            )
        return states

    # --- dispatcher -----------------------------------------------------------------------

    def _dispatch(self, now: float) -> None:
        while (
            self.next_arrival < len(self.trace)
            and self.trace[self.next_arrival].task.enqueued_at <= now
        ):
            arrival = self.trace[self.next_arrival]
            (self.writes if arrival.task.cls.is_write else self.reads).append(arrival)
            self.admitted[arrival.task.task_id] = now
            self.next_arrival += 1
            self.dirty = True
        if not (self.reads or self.writes):
            self.pause_since = None
            return
        if self.pause_since is not None:
            self.paused_s += self.config.round_s
        valve_due = (
            self.pause_since is not None and now - self.pause_since >= self.config.max_pause_s
        )
        # lbh_adaptive's ramp, valve and exit move with time alone: it plans every round.
        if not (self.dirty or valve_due or self.adaptive):
            return
        self.dirty = False
        size = self.config.max_batch
        batch = self.reads[:size] + self.writes[:size]
        states, tasks = self._states(), [a.task for a in batch]
        if self.adaptive is not None:
            assignments = self._adaptive_round(now, states, tasks)
        else:
            assignments = self._round(now, states, tasks)
        sent = {task_id for task_id, _ in assignments}
        if sent:  # out of the queues first: a node killed by a send re-queues what it lost
            for queue in (self.reads, self.writes):
                queue[:size] = [a for a in queue[:size] if a.task.task_id not in sent]
        for task_id, node_id in assignments:
            self._send(now, self.index[node_id], self.by_id[task_id])

    def _round(
        self, now: float, states: list[NodeState], tasks: list[Task]
    ) -> list[tuple[str, str]]:
        """A round of a strategy without a clock; the spec's valve is applied here."""
        plan = self.strategy.plan(states, tasks)
        self._track_pause(now, plan.paused)
        if plan.paused and now - (self.pause_since or now) >= self.config.max_pause_s:
            forced = forced_reads(states, tasks)
            self.forced += len(forced)
            return forced
        return plan.assignments

    def _adaptive_round(
        self, now: float, states: list[NodeState], tasks: list[Task]
    ) -> list[tuple[str, str]]:
        """A round of lbh_adaptive: it has the clock, applies its own valve, and may name a
        node to recycle, which goes through the recycling policy's one-at-a-time rule."""
        assert self.adaptive is not None
        decision = self.adaptive.decide(
            states,
            tasks,
            now=now,
            sampled_inflight=self.sampled_inflight,
            service_s=aged_service(
                self.service_s, self.service_seen_at, now, DEFAULT_SERVICE_DECAY_S
            ),
        )
        self._track_pause(now, decision.plan.paused)
        self.forced += len(decision.forced)
        name = decision.recycle_now
        if name is not None and self._may_recycle(name, now):
            self.recycle_state = self.policy.start(self.recycle_state, name)
            self._drain(now, self.index[name])
        return decision.plan.assignments

    def _may_recycle(self, name: str, now: float) -> bool:
        state = self.recycle_state
        cooled = now >= state.cooled_at.get(name, -math.inf)
        return (
            state.restarting is None and cooled and self.nodes[self.index[name]].phase is Phase.UP
        )

    def _track_pause(self, now: float, paused: bool) -> None:
        if not paused:
            self.pause_since = None
        elif self.pause_since is None:
            self.pause_since = now

    def _requeue(self, lost: list[Arrival]) -> None:
        """Calls lost with a node go back to their topic, in age order (Kafka redelivers)."""
        for call in lost:
            queue = self.writes if call.task.cls.is_write else self.reads
            bisect.insort(queue, call, key=_age)

    # --- measures -------------------------------------------------------------------------

    def _summary(self) -> RunResult:
        done = len(self.latencies)
        finished = done == len(self.trace)
        span = self.last_finish if finished else self.config.time_limit_s
        p50, p95, p99 = _percentiles_ms(self.latencies)
        # Held: not sent by the first round that saw it (later rounds are round_s apart).
        late = 0.5 * self.config.round_s
        held = sum(
            1
            for task_id, at in self.admitted.items()
            if self.first_sent.get(task_id, math.inf) - at > late
        )
        return RunResult(
            scenario=self.scenario,
            label=self.spec.label,
            rate=self.config.rate,
            tasks=len(self.trace),
            completed=done,
            completion_s=self.last_finish if finished else math.nan,
            throughput=done / span if span > 0 else 0.0,
            p50_ms=p50,
            p95_ms=p95,
            p99_ms=p99,
            held=held,
            paused_s=self.paused_s,
            forced=self.forced,
            recycles=self.recycles,
            crashes=self.crashes,
            requeued=self.requeued,
            timeline=tuple(self.timeline),
        )


def reported_figures(
    raw: Mapping[int, tuple[float, float]], config: SimConfig
) -> dict[int, tuple[float, float]]:
    """The (memory, CPU) each node reports, from its own `raw` figures: its own CPU, or with
    `machine_cpu` the mean CPU of the nodes sampled (one machine's figure for all), plus
    `host_cpu` for the host's other processes, clipped to 1. A machine's figure moves by a
    fraction of a call's CPU per call a node takes: far less than the spec's delta."""
    if not raw or (not config.machine_cpu and config.host_cpu == 0.0):
        return dict(raw)
    mean = math.fsum(cpu for _, cpu in raw.values()) / len(raw)
    return {
        i: (m, min(1.0, config.host_cpu + (mean if config.machine_cpu else cpu)))
        for i, (m, cpu) in raw.items()
    }


def _age(call: Arrival) -> float:
    return call.task.enqueued_at


def _ewma(old: tuple[float, float], new: tuple[float, float], alpha: float) -> tuple[float, float]:
    return (alpha * new[0] + (1 - alpha) * old[0], alpha * new[1] + (1 - alpha) * old[1])


def _percentiles_ms(seconds: Sequence[float]) -> tuple[float, float, float]:
    """p50, p95, p99 of `seconds`, in milliseconds (nan if empty)."""
    if not seconds:
        return math.nan, math.nan, math.nan
    p50, p95, p99 = (np.percentile(np.asarray(seconds), [50, 95, 99]) * 1e3).tolist()
    return p50, p95, p99
