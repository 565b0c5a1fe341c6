"""`lbh_adaptive`: LBH's state plane and memory check, with the rules of adaptive_rules.py.

A sibling of `LBHScheduler` (which stays as lbh-spec.md says). Per round:

1. d is read live: the sample's d moved by delta per task started or finished since the sample.
   With `learn_delta` (the default), each node's delta is the slope of d against its mean
   in-flight count over its recent samples (`learnt_delta`), not the spec's constant.
2. Zones and LBH come from that live d.
3. Tasks go in LBH's dispatch order (reads first), except that tasks waiting `overdue_s` or
   more go first, oldest first. Each goes to the node of lowest expected wait, (live in flight
   + 1) x its recent service time (the fewest in flight when no service time is known), among
   those with room: memory left after the headroom, and a predicted d that stays within
   Dis_avemax (or fewer tasks in flight than the floor: `calibrated_floor`, at least
   `min_inflight`). Writes avoid zone III nodes and,
   between nodes of as low a cost, take zone I first. There is no cluster-wide
   pause: a loaded node stops taking work and the others go on.
4. A round that sends nothing while tasks wait is a pause. After a pause of `ramp_after_s` or
   more, each node's in-flight count is capped by a ceiling that rises with time (the ramp).
5. After `max_pause_s` of pause, the valve sends reads where memory allows, a few per node.
6. When LBH has stayed below 0 for `max_pause_s`, held there by memory alone, with no zone III
   node, the decision names the highest-d node to recycle; the caller drains and restarts it.

Time comes in as an argument and what the strategy remembers is a frozen `AdaptiveState`, so
`AdaptivePolicy.decide` is a pure function; `LBHAdaptive` keeps the state between rounds.
"""

from __future__ import annotations

import math
from collections.abc import Mapping, Sequence
from dataclasses import dataclass, field, replace
from types import MappingProxyType

from balancer.adaptive_rules import (
    DistanceSample,
    NodeLoad,
    SampleWindow,
    calibrated_floor,
    choose,
    deadlock_exit,
    fitted,
    lasted,
    learnt_delta,
    live_distance,
    memory_bound,
    observe_round,
    overdue_first,
    ramp_limit,
    room,
    since_while,
    usable_free_mb,
    valve_choice,
)
from balancer.calibration import Calibration
from balancer.lbh import DEFAULT_DELTA, _demand_table, check_node_ids
from balancer.plan import Plan
from balancer.state import NodeState, Zone, zoning
from balancer.tasks import Task, TaskClass, dispatch_order

DEFAULT_HEADROOM_MB = 100.0
"""Memory kept out of the free memory packed against: about 10% of a 1,024 MB node budget.
Enough for what calls leak between two samples; more (the 30% of lbh+headroom) makes nodes
whose memory has crept refuse work long before they are in danger."""

_NO_MEMORY_DEMAND: Mapping[TaskClass, float] = MappingProxyType({})
_NO_SAMPLE_COUNTS: Mapping[str, int] = MappingProxyType({})
_NO_SERVICE_TIMES: Mapping[str, float] = MappingProxyType({})
_EMPTY = SampleWindow()
_History = tuple[tuple[str, SampleWindow], ...]
"""(node id, its sample window) per node: a frozen value, as the rest of AdaptiveState."""


@dataclass(frozen=True, slots=True)
class AdaptiveSettings:
    """The adaptive rules' knobs (defaults in brackets).

    headroom_mb: memory kept out of each node's free memory [100].
    max_pause_s: pause before the valve opens, and LBH < 0 time before the deadlock exit [5].
    ramp_after_s: a pause at least this long is followed by the ramp [1, one sample interval:
        a shorter pause left no trace in the samples].
    ramp_start: in-flight ceiling per node when the ramp starts [2].
    ramp_per_s: how fast the ceiling rises, tasks per second [8].
    min_inflight: tasks any routable node may have in flight whatever its d says [4].
    calibrated_floor: that floor is, when higher, the count of tasks that takes a node's own d
        from Dis_avemin to Dis_avemax at the configured delta (`calibrated_floor`: 15 with the
        simulator's calibration) [True].
    valve_per_node: reads the valve may send to one node per round [1].
    overdue_s: a task waiting this long goes before younger ones, whatever its class [2].
    learn_delta: each node's delta is learnt from its samples (`learnt_delta`) instead of
        the configured constant [True].
    delta_window: samples per node the delta is learnt from [20].
    delta_spread: the samples' mean in-flight counts must spread over this many tasks, else
        the configured delta stands [1].
    delta_min, delta_max: the clamp of a learnt delta [0.005, 0.05: at most the spec's
        DEFAULT_DELTA, so a learnt delta only ever admits more than the constant; allowed
        higher, it cost 1.44x the best baseline's p99 at seed 1 of steady-200].
    """

    headroom_mb: float = DEFAULT_HEADROOM_MB
    max_pause_s: float = 5.0
    ramp_after_s: float = 1.0
    ramp_start: int = 2
    ramp_per_s: float = 8.0
    min_inflight: int = 4
    calibrated_floor: bool = True
    valve_per_node: int = 1
    overdue_s: float = 2.0
    learn_delta: bool = True
    delta_window: int = 20
    delta_spread: float = 1.0
    delta_min: float = 0.005
    delta_max: float = DEFAULT_DELTA

    def __post_init__(self) -> None:
        for name in (
            "headroom_mb",
            "max_pause_s",
            "ramp_after_s",
            "ramp_per_s",
            "overdue_s",
            "delta_min",
            "delta_max",
            "delta_spread",
        ):
            value = float(getattr(self, name))
            if not (math.isfinite(value) and value >= 0.0):
                raise ValueError(f"{name} must be finite and >= 0, got {value}")
        for name in ("ramp_start", "valve_per_node", "min_inflight"):
            if getattr(self, name) < 1:
                raise ValueError(f"{name} must be >= 1, got {getattr(self, name)}")
        if self.delta_window < 2:
            raise ValueError(f"delta_window must be >= 2, got {self.delta_window}")
        if self.delta_min > self.delta_max:
            raise ValueError(
                f"delta_min must be <= delta_max, got {self.delta_min} > {self.delta_max}"
            )


@dataclass(frozen=True, slots=True)
class AdaptiveState:
    """What lbh_adaptive remembers between rounds; start from `AdaptiveState()`.

    paused_since: first round of the current pause (None: not paused).
    resumed_at: end of the last pause long enough to ramp after (None: none yet).
    stuck_since: first round of the current stretch of LBH < 0 held there by memory alone
        (see `memory_bound`; None: not now).
    samples: (node id, `SampleWindow`) per routable node: its last samples for
        `learnt_delta`, kept whether or not the delta is learnt; a node DOWN loses its window
        (a restart changes its memory).
    """

    paused_since: float | None = None
    resumed_at: float | None = None
    stuck_since: float | None = None
    samples: _History = ()


@dataclass(frozen=True, slots=True)
class Decision:
    """One round's answer: the plan, the state to pass to the next round, and what to do.

    plan.assignments includes the valve's (listed again in `forced`, for the metric).
    recycle_now: the node the deadlock exit names, for the caller to drain and restart (its
    one-at-a-time and cool-down rules still apply); None most of the time.
    deltas: each node's delta this round (the configured one unless learnt).
    """

    plan: Plan
    state: AdaptiveState
    forced: list[tuple[str, str]] = field(default_factory=list)
    recycle_now: str | None = None
    deltas: dict[str, float] = field(default_factory=dict)


@dataclass(frozen=True, slots=True)
class AdaptivePolicy:
    """The settings of lbh_adaptive and its pure round function `decide`."""

    calibration: Calibration
    delta: float = DEFAULT_DELTA
    demand: Mapping[TaskClass, float] = field(default_factory=lambda: _demand_table({}))
    settings: AdaptiveSettings = field(default_factory=AdaptiveSettings)

    def decide(
        self,
        state: AdaptiveState,
        nodes: Sequence[NodeState],
        tasks: Sequence[Task],
        now: float | None,
        sampled_inflight: Mapping[str, int] = _NO_SAMPLE_COUNTS,
        service_s: Mapping[str, float] = _NO_SERVICE_TIMES,
    ) -> Decision:
        """Place one round's tasks. `now` is the caller's clock in seconds (any origin); None
        turns off the rules that need time (ramp, valve, deadlock exit and the learning of
        delta, which weighs in-flight counts by time) and keeps `state`. `sampled_inflight` is
        each node's in-flight count when its sample was taken (a node missing there is taken
        as sampled now). `service_s` is each node's recent service time in seconds (a node
        missing there has no data yet; see `choose`)."""
        ids = check_node_ids(nodes)
        sampled = zoning(nodes, self.calibration).distances
        samples = state.samples
        if now is not None:
            samples = self._remember(dict(samples), nodes, sampled, now)
        deltas = self._deltas(nodes, dict(samples))
        live = _live_distances(nodes, sampled, sampled_inflight, deltas)
        zones, lbh = self._zones(nodes, live), _health(nodes, live, self.calibration)
        stuck = memory_bound(lbh, _health(nodes, [n.memory for n in nodes], self.calibration))
        ramp_from = None if now is None else self._ramp_from(state, now)
        ramp = None if now is None or ramp_from is None else now - ramp_from
        placed = _Round(self, nodes, live, deltas, zones, ramp, service_s).place(tasks, now)
        paused = bool(tasks) and not placed
        forced: list[tuple[int, int]] = []
        recycle_now = None
        if now is not None:
            state = self._next_state(state, paused, stuck, ramp_from, now, samples)
            if paused and lasted(state.paused_since, now, self.settings.max_pause_s):
                forced = _Round(self, nodes, live, deltas, zones, None, service_s).valve(tasks)
            recycle_now = deadlock_exit(
                dict(zip(ids, zones, strict=True)),
                dict(zip(ids, live, strict=True)),
                state.stuck_since,
                now,
                self.settings.max_pause_s,
            )
            if recycle_now is not None:  # give the restart a full max_pause to show
                state = replace(state, stuck_since=now)
        return Decision(
            plan=_plan(ids, tasks, placed + forced, zones, live, lbh, paused),
            state=state,
            forced=[(tasks[t].task_id, ids[n]) for t, n in forced],
            recycle_now=recycle_now,
            deltas=dict(zip(ids, deltas, strict=True)),
        )

    def _remember(
        self,
        history: Mapping[str, SampleWindow],
        nodes: Sequence[NodeState],
        sampled: Sequence[float],
        now: float,
    ) -> _History:
        """Each routable node's sample window after this round (see `observe_round`), its
        delta fitted once per new sample when the delta is learnt."""
        keep = self.settings.delta_window
        windows = (
            (n.node_id, observe_round(history.get(n.node_id, _EMPTY), d, n.inflight, now, keep))
            for n, d in zip(nodes, sampled, strict=True)
            if not n.down
        )
        if not self.settings.learn_delta:
            return tuple(windows)
        return tuple((node, fitted(window, self._fit)) for node, window in windows)

    def _fit(self, samples: Sequence[DistanceSample]) -> float:
        """`learnt_delta` of `samples` with this policy's delta and settings."""
        s = self.settings
        return learnt_delta(samples, self.delta, s.delta_min, s.delta_max, s.delta_spread)

    def floor(self) -> int:
        """Tasks any routable node may hold whatever its d says (`calibrated_floor`)."""
        s = self.settings
        if not s.calibrated_floor:
            return s.min_inflight
        cal = self.calibration
        return calibrated_floor(cal.dis_avemin, cal.dis_avemax, self.delta, s.min_inflight)

    def _deltas(
        self, nodes: Sequence[NodeState], history: Mapping[str, SampleWindow]
    ) -> list[float]:
        """Each node's delta: learnt from its samples with `learn_delta` (the window's fitted
        delta, fitted here for a window that has none), else the constant."""
        if not self.settings.learn_delta:
            return [self.delta] * len(nodes)
        return [self._delta_of(history.get(n.node_id, _EMPTY)) for n in nodes]

    def _delta_of(self, window: SampleWindow) -> float:
        return window.delta if window.delta is not None else self._fit(window.samples)

    def _zones(self, nodes: Sequence[NodeState], live: Sequence[float]) -> list[Zone]:
        ave, high = self.calibration.dis_ave, self.calibration.dis_avemax
        return [
            Zone.DOWN if n.down else Zone.I if d <= ave else Zone.II if d <= high else Zone.III
            for n, d in zip(nodes, live, strict=True)
        ]

    def _ramp_from(self, state: AdaptiveState, now: float) -> float | None:
        """When the current ramp started: now, if this round ends a long enough pause (so the
        first round out of it is already capped), else the last resume."""
        if lasted(state.paused_since, now, self.settings.ramp_after_s):
            return now
        return state.resumed_at

    def _next_state(
        self,
        state: AdaptiveState,
        paused: bool,
        stuck: bool,
        ramp_from: float | None,
        now: float,
        samples: _History,
    ) -> AdaptiveState:
        return AdaptiveState(
            paused_since=since_while(state.paused_since, paused, now),
            resumed_at=state.resumed_at if paused else ramp_from,
            stuck_since=since_while(state.stuck_since, stuck, now),
            samples=samples,
        )


def _live_distances(
    nodes: Sequence[NodeState],
    sampled: Sequence[float],
    sampled_inflight: Mapping[str, int],
    deltas: Sequence[float],
) -> list[float]:
    return [
        live_distance(d, n.inflight, sampled_inflight.get(n.node_id, n.inflight), delta)
        for d, n, delta in zip(sampled, nodes, deltas, strict=True)
    ]


def _health(
    nodes: Sequence[NodeState], distances: Sequence[float], calibration: Calibration
) -> float:
    """LBH of `distances` (one per node), exactly rounded like the spec's."""
    ave = calibration.dis_ave
    return math.fsum(ave - d for n, d in zip(nodes, distances, strict=True) if not n.down)


def _plan(
    ids: list[str],
    tasks: Sequence[Task],
    pairs: list[tuple[int, int]],
    zones: list[Zone],
    live: list[float],
    lbh: float,
    paused: bool,
) -> Plan:
    given = {t for t, _ in pairs}
    return Plan(
        assignments=[(tasks[t].task_id, ids[n]) for t, n in pairs],
        held=[task.task_id for i, task in enumerate(tasks) if i not in given],
        recycle=[ids[i] for i, zone in enumerate(zones) if zone is Zone.III],
        zones=dict(zip(ids, zones, strict=True)),
        lbh=lbh,
        paused=paused,
        distances=dict(zip(ids, live, strict=True)),
    )


class _Round:
    """One round's bookkeeping: per routable node, live load and room."""

    def __init__(
        self,
        policy: AdaptivePolicy,
        nodes: Sequence[NodeState],
        live: Sequence[float],
        deltas: Sequence[float],
        zones: Sequence[Zone],
        since_resume_s: float | None,
        service_s: Mapping[str, float],
    ) -> None:
        s = policy.settings
        self._policy = policy
        self._index = [i for i, z in enumerate(zones) if z is not Zone.DOWN]
        self._deltas = [deltas[i] for i in self._index]
        ceiling = ramp_limit(since_resume_s, s.ramp_start, s.ramp_per_s)
        floor = policy.floor()
        self._loads: list[NodeLoad] = []
        for i in self._index:
            node = nodes[i]
            room_left = room(
                live[i],
                policy.calibration.dis_avemax,
                deltas[i],
                node.inflight,
                floor,
                1 << 30,
            )
            if ceiling is not None:
                room_left = min(room_left, max(0, ceiling - node.inflight))
            free = usable_free_mb(node.free_memory_mb, s.headroom_mb)
            self._loads.append(
                NodeLoad(
                    node.node_id,
                    node.inflight,
                    live[i],
                    room_left,
                    free,
                    service_s.get(node.node_id),
                )
            )

    def _give(self, k: int, need_mb: float) -> None:
        n = self._loads[k]
        self._loads[k] = NodeLoad(
            n.node_id,
            n.inflight + 1,
            n.d_hat + self._deltas[k],
            n.room_left - 1,
            None if n.free_left_mb is None else n.free_left_mb - need_mb,
            n.service_s,
        )

    def place(self, tasks: Sequence[Task], now: float | None) -> list[tuple[int, int]]:
        """(task index, node index) pairs, overdue tasks first, then in dispatch order; a held
        write holds its account's later writes, as in LBH."""
        out: list[tuple[int, int]] = []
        blocked: set[str] = set()
        cal = self._policy.calibration
        ages = [task.enqueued_at for task in tasks]
        overdue_s = self._policy.settings.overdue_s
        for t in overdue_first(dispatch_order(tasks), ages, now, overdue_s):
            task = tasks[t]
            if task.account in blocked and task.cls.is_write:
                continue
            need = self._policy.demand[task.cls]
            k = choose(self._loads, need, task.cls.is_write, cal.dis_ave, cal.dis_avemax)
            if k is None:
                if task.cls.is_write and task.account is not None:
                    blocked.add(task.account)
                continue
            self._give(k, need)
            out.append((t, self._index[k]))
        return out

    def valve(self, tasks: Sequence[Task]) -> list[tuple[int, int]]:
        """The valve's (task index, node index) pairs: reads, oldest first, spread."""
        out: list[tuple[int, int]] = []
        given: dict[str, int] = {}
        per_node = self._policy.settings.valve_per_node
        for t in dispatch_order(tasks):
            if tasks[t].cls.is_write:
                continue
            need = self._policy.demand[tasks[t].cls]
            k = valve_choice(self._loads, need, given, per_node)
            if k is None:
                break
            node_id = self._loads[k].node_id
            given[node_id] = given.get(node_id, 0) + 1
            self._give(k, need)
            out.append((t, self._index[k]))
        return out


class LBHAdaptive:
    """The `lbh_adaptive` strategy: an AdaptivePolicy and the state it carries between rounds.

    `decide(nodes, tasks, now=..., sampled_inflight=..., service_s=...)` is the full
    interface. `plan(nodes, tasks)` answers the Strategy protocol without a clock: the rules
    that need time (ramp, valve, deadlock exit) are then off.
    """

    name = "lbh_adaptive"

    def __init__(
        self,
        dis_avemin: float,
        dis_avemax: float,
        delta: float = DEFAULT_DELTA,
        task_memory_mb: Mapping[TaskClass, float] = _NO_MEMORY_DEMAND,
        settings: AdaptiveSettings | None = None,
    ) -> None:
        delta = float(delta)
        if not (math.isfinite(delta) and delta >= 0.0):
            raise ValueError(f"delta must be a finite number >= 0, got {delta}")
        self._policy = AdaptivePolicy(
            Calibration(dis_avemin, dis_avemax),
            delta,
            _demand_table(task_memory_mb),
            settings or AdaptiveSettings(),
        )
        self._state = AdaptiveState()

    @property
    def policy(self) -> AdaptivePolicy:
        """The settings in use."""
        return self._policy

    @property
    def state(self) -> AdaptiveState:
        """What the strategy remembers from the rounds so far."""
        return self._state

    def plan(self, nodes: Sequence[NodeState], tasks: Sequence[Task]) -> Plan:
        """The Strategy protocol: a round without a clock (time-based rules off)."""
        return self.decide(nodes, tasks).plan

    def decide(
        self,
        nodes: Sequence[NodeState],
        tasks: Sequence[Task],
        *,
        now: float | None = None,
        sampled_inflight: Mapping[str, int] = _NO_SAMPLE_COUNTS,
        service_s: Mapping[str, float] = _NO_SERVICE_TIMES,
    ) -> Decision:
        """One round at `now`; the state moves on to the decision's. `service_s`: each node's
        recent service time (see `AdaptivePolicy.decide`)."""
        decision = self._policy.decide(self._state, nodes, tasks, now, sampled_inflight, service_s)
        self._state = decision.state
        return decision
