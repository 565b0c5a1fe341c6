"""lbh_adaptive as a whole: properties of a decision (hypothesis) and the time-based rules."""

from __future__ import annotations

import copy
import math
from dataclasses import replace

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from balancer import NodeState, Task, TaskClass, make_strategy
from balancer.adaptive import AdaptivePolicy, AdaptiveSettings, AdaptiveState, LBHAdaptive
from balancer.adaptive_rules import DistanceSample, SampleWindow, learnt_delta
from balancer.calibration import Calibration

from .generators import node_lists, task_lists

PROPERTY = settings(max_examples=150, deadline=None)
DEMAND = {TaskClass.RT: 1.0, TaskClass.DT: 16.0, TaskClass.MAT: 32.0, TaskClass.MCT: 4.0}


def _policy(headroom_mb: float = 0.0) -> AdaptivePolicy:
    return AdaptivePolicy(
        Calibration(0.3, 1.07), 0.05, DEMAND, AdaptiveSettings(headroom_mb=headroom_mb)
    )


_STATE = st.builds(
    AdaptiveState,
    st.one_of(st.none(), st.floats(0.0, 10.0)),
    st.one_of(st.none(), st.floats(0.0, 10.0)),
    st.one_of(st.none(), st.floats(0.0, 10.0)),
)
_NOW = st.one_of(st.none(), st.floats(10.0, 20.0))
_HEADROOM = st.sampled_from([0.0, 5.0, 100.0])


def _sampled(nodes: list[NodeState], shift: int) -> dict[str, int]:
    return {n.node_id: max(0, n.inflight + shift) for n in nodes}


@PROPERTY
@given(_HEADROOM, _STATE, node_lists(), task_lists(), _NOW, st.integers(-2, 2))
def test_every_task_is_assigned_once_or_held(headroom, state, nodes, tasks, now, shift):
    """Assigned and held together are every task, and no task is assigned twice."""
    plan = _policy(headroom).decide(state, nodes, tasks, now, _sampled(nodes, shift)).plan
    assigned = [t for t, _ in plan.assignments]
    assert len(assigned) == len(set(assigned))
    assert sorted(assigned + plan.held) == sorted(t.task_id for t in tasks)


@PROPERTY
@given(_HEADROOM, _STATE, node_lists(), task_lists(), _NOW)
def test_nothing_goes_to_a_down_node(headroom, state, nodes, tasks, now):
    """A DOWN node takes no task, not even from the valve."""
    plan = _policy(headroom).decide(state, nodes, tasks, now).plan
    down = {n.node_id for n in nodes if n.down}
    assert not {node for _, node in plan.assignments} & down


@PROPERTY
@given(_HEADROOM, _STATE, node_lists(), task_lists(), _NOW)
def test_memory_left_after_the_headroom_covers_what_a_node_is_given(
    headroom, state, nodes, tasks, now
):
    """What a round gives a node, valve included, fits its free memory less the headroom."""
    plan = _policy(headroom).decide(state, nodes, tasks, now).plan
    cls = {t.task_id: t.cls for t in tasks}
    given_mb: dict[str, float] = {}
    for task_id, node_id in plan.assignments:
        given_mb[node_id] = given_mb.get(node_id, 0.0) + DEMAND[cls[task_id]]
    for node in nodes:
        if node.free_memory_mb is not None and node.node_id in given_mb:
            assert given_mb[node.node_id] <= node.free_memory_mb - headroom + 1e-9


@PROPERTY
@given(_STATE, node_lists(), task_lists(), _NOW)
def test_a_held_write_holds_its_accounts_later_writes(state, nodes, tasks, now):
    """No write is sent while an older write of its account waits."""
    plan = _policy().decide(state, nodes, tasks, now).plan
    sent = {t for t, _ in plan.assignments}
    for task in tasks:
        if task.cls.is_write and task.account is not None and task.task_id in sent:
            older = [
                t
                for t in tasks
                if t.cls.is_write
                and t.account == task.account
                and (t.enqueued_at, tasks.index(t)) < (task.enqueued_at, tasks.index(task))
            ]
            assert all(t.task_id in sent for t in older)


@PROPERTY
@given(_STATE, node_lists(), task_lists(), _NOW, st.integers(-2, 2))
def test_decide_is_pure(state, nodes, tasks, now, shift):
    """The same input gives the same decision and leaves the input unchanged."""
    before = copy.deepcopy((state, nodes, tasks))
    policy, sampled = _policy(), _sampled(nodes, shift)
    assert policy.decide(state, nodes, tasks, now, sampled) == policy.decide(
        state, nodes, tasks, now, sampled
    )
    assert (state, nodes, tasks) == before


@PROPERTY
@given(_STATE, node_lists(), task_lists())
def test_without_a_clock_the_state_stays_and_time_rules_are_off(state, nodes, tasks):
    """now=None keeps the state and neither forces reads nor names a node to recycle."""
    decision = _policy().decide(state, nodes, tasks, None)
    assert decision.state == state
    assert (decision.forced, decision.recycle_now) == ([], None)


@PROPERTY
@given(_STATE, node_lists(), task_lists(), _NOW)
def test_paused_means_tasks_waited_and_none_was_placed(state, nodes, tasks, now):
    """A plan is paused exactly when tasks waited and the placement (valve aside) sent none."""
    decision = _policy().decide(state, nodes, tasks, now)
    placed = len(decision.plan.assignments) - len(decision.forced)
    assert decision.plan.paused == (bool(tasks) and placed == 0)


def _hot_nodes() -> list[NodeState]:
    """Two nodes in zone III holding the calibrated floor (15): no room for anything."""
    return [NodeState("a", 0.8, 1.0, inflight=15), NodeState("b", 0.8, 1.0, inflight=15)]


def test_an_overdue_write_takes_the_last_room_before_younger_reads():
    """When nodes run out of room, a write waiting overdue_s goes before younger reads."""
    settings = AdaptiveSettings(min_inflight=2, calibrated_floor=False)
    policy = AdaptivePolicy(Calibration(0.3, 1.07), 0.05, DEMAND, settings)
    busy = [NodeState("a", 1.0, 1.0, inflight=1)]  # room for one more only (the floor of 2)
    write = Task("w", TaskClass.MCT, "x", enqueued_at=1.0)
    reads = [Task(f"r{i}", TaskClass.RT, enqueued_at=2.0 + i) for i in range(3)]
    plan = policy.decide(AdaptiveState(), busy, [*reads, write], 10.0).plan
    assert plan.assignments == [("w", "a")]


def test_valve_opens_after_max_pause_and_spreads_reads():
    """After max_pause of pause the valve sends reads, one per node per round, writes stay."""
    policy, nodes = _policy(), _hot_nodes()
    tasks = [Task(f"r{i}", TaskClass.RT) for i in range(5)] + [Task("w", TaskClass.MCT, "x")]
    first = policy.decide(AdaptiveState(), nodes, tasks, 0.0)
    assert first.plan.paused
    assert first.forced == []
    later = policy.decide(first.state, nodes, tasks, 5.0)
    assert sorted(node for _, node in later.forced) == ["a", "b"]
    assert "w" in later.plan.held


def test_ramp_caps_in_flight_after_a_long_pause():
    """Right after a pause longer than ramp_after_s, a node may fill only to the ramp's start."""
    policy = _policy()
    tasks = [Task(f"r{i}", TaskClass.RT) for i in range(20)]
    paused = policy.decide(AdaptiveState(), _hot_nodes(), tasks, 0.0).state
    idle = [NodeState("a", 0.3, 0.0), NodeState("b", 0.3, 0.0)]
    resumed = policy.decide(paused, idle, tasks, 2.0)
    assert len(resumed.plan.assignments) == 2 * policy.settings.ramp_start
    settled = policy.decide(resumed.state, idle, tasks, 10.0)
    assert len(settled.plan.assignments) > len(resumed.plan.assignments)


def test_no_ramp_after_a_short_pause():
    """A pause shorter than ramp_after_s is not followed by a ceiling."""
    policy = _policy()
    tasks = [Task(f"r{i}", TaskClass.RT) for i in range(20)]
    paused = policy.decide(AdaptiveState(), _hot_nodes(), tasks, 0.0).state
    idle = [NodeState("a", 0.3, 0.0), NodeState("b", 0.3, 0.0)]
    assert len(policy.decide(paused, idle, tasks, 0.5).plan.assignments) > 4


def _crept() -> list[NodeState]:
    """Idle nodes whose leaked memory alone holds LBH below 0, none in zone III."""
    return [NodeState("a", 0.72, 0.04), NodeState("b", 0.75, 0.04), NodeState("c", 0.70, 0.04)]


def test_deadlock_exit_names_the_highest_d_node_after_max_pause():
    """Memory-bound LBH below 0 for max_pause with no zone III node: recycle the highest d."""
    policy, state = _policy(), AdaptiveState()
    for now in (0.0, 2.0, 4.0):
        decision = policy.decide(state, _crept(), [], now)
        assert decision.plan.lbh < 0
        assert decision.recycle_now is None
        state = decision.state
    assert policy.decide(state, _crept(), [], 5.0).recycle_now == "b"


def test_deadlock_exit_waits_a_full_max_pause_before_the_next():
    """After naming a node, the exit needs another max_pause before it names one again."""
    policy, state = _policy(), AdaptiveState()
    state = policy.decide(state, _crept(), [], 0.0).state
    fired = policy.decide(state, _crept(), [], 5.0)
    assert fired.recycle_now == "b"
    assert policy.decide(fired.state, _crept(), [], 6.0).recycle_now is None


def test_load_alone_does_not_trigger_the_deadlock_exit():
    """LBH below 0 from CPU load, with memory fine, never recycles: the load passes."""
    policy, state = _policy(), AdaptiveState()
    busy = [NodeState("a", 0.3, 0.95), NodeState("b", 0.3, 0.95)]
    for now in (0.0, 10.0, 20.0):
        decision = policy.decide(state, busy, [], now)
        assert decision.plan.lbh < 0
        assert decision.recycle_now is None
        state = decision.state


def test_a_task_started_since_the_sample_counts_against_the_node():
    """Two idle-looking nodes: the one with tasks started since its sample is passed over."""
    policy = _policy()
    nodes = [NodeState("a", 0.3, 0.1, inflight=3), NodeState("b", 0.3, 0.1, inflight=3)]
    decision = policy.decide(AdaptiveState(), nodes, [Task("r", TaskClass.RT)], 0.0, {"a": 0})
    assert decision.plan.distances["a"] > decision.plan.distances["b"]


def _idle_pair() -> list[NodeState]:
    return [NodeState("a", 0.3, 0.1, inflight=1), NodeState("b", 0.3, 0.1, inflight=1)]


def _reads(count: int) -> list[Task]:
    return [Task(f"r{i}", TaskClass.RT) for i in range(count)]


def test_with_no_service_times_the_choice_is_the_in_flight_rule():
    """No service_s (the default): tasks alternate between two equally loaded nodes."""
    plan = _policy().decide(AdaptiveState(), _idle_pair(), _reads(4), 0.0).plan
    assert [node for _, node in plan.assignments] == ["a", "b", "a", "b"]


def test_a_node_seen_three_times_slower_waits_until_the_other_costs_as_much():
    """Service times 0.375 s and 0.125 s, one task in flight each: the slow node's cost is
    0.75, so the fast one takes tasks until its own (in flight + 1) x 0.125 reaches it."""
    service = {"a": 0.375, "b": 0.125}
    plan = _policy().decide(AdaptiveState(), _idle_pair(), _reads(6), 0.0, {}, service).plan
    assert [node for _, node in plan.assignments] == ["b", "b", "b", "b", "a", "b"]


def test_strategy_passes_service_times_to_its_policy():
    """LBHAdaptive.decide(service_s=...) reaches the choice."""
    strategy = LBHAdaptive(0.3, 1.07)
    decision = strategy.decide(_idle_pair(), _reads(1), now=0.0, service_s={"a": 2.0, "b": 0.1})
    assert decision.plan.assignments == [("r0", "b")]


def test_factory_builds_lbh_adaptive_with_its_settings():
    """make_strategy("lbh_adaptive") is an LBHAdaptive with the given delta and demand."""
    strategy = make_strategy(
        "lbh_adaptive", dis_avemin=0.2, dis_avemax=1.0, delta=0.1, task_memory_mb=DEMAND
    )
    assert isinstance(strategy, LBHAdaptive)
    assert strategy.name == "lbh_adaptive"
    assert (strategy.policy.delta, strategy.policy.demand[TaskClass.MAT]) == (0.1, 32.0)


def test_strategy_carries_its_state_between_rounds():
    """LBHAdaptive.decide moves its state on; plan() without a clock leaves it."""
    strategy = LBHAdaptive(0.3, 1.07, task_memory_mb=DEMAND)
    strategy.decide(_hot_nodes(), [Task("r", TaskClass.RT)], now=1.0)
    assert strategy.state.paused_since == 1.0
    strategy.plan(_hot_nodes(), [Task("r", TaskClass.RT)])
    assert strategy.state.paused_since == 1.0


@pytest.mark.parametrize("field", ["headroom_mb", "max_pause_s", "ramp_after_s", "ramp_per_s"])
def test_settings_refuse_negative_times_and_sizes(field):
    """A negative headroom, pause or ramp setting is a ValueError naming it."""
    with pytest.raises(ValueError, match=field):
        AdaptiveSettings(**{field: -1.0})  # type: ignore[arg-type]


@pytest.mark.parametrize("field", ["ramp_start", "valve_per_node", "min_inflight"])
def test_settings_refuse_counts_below_one(field):
    """A ramp start, valve share or in-flight floor below 1 is a ValueError naming it."""
    with pytest.raises(ValueError, match=field):
        AdaptiveSettings(**{field: 0})  # type: ignore[arg-type]


@pytest.mark.parametrize("field", ["delta_min", "delta_max", "delta_spread"])
def test_settings_refuse_a_negative_delta_clamp_or_spread(field):
    """A negative delta bound or spread is a ValueError naming it."""
    with pytest.raises(ValueError, match=field):
        AdaptiveSettings(**{field: -1.0})  # type: ignore[arg-type]


def test_settings_refuse_a_clamp_upside_down_or_a_window_of_one():
    """delta_min above delta_max, or a window of fewer than 2 samples, is a ValueError."""
    with pytest.raises(ValueError, match="delta_min"):
        AdaptiveSettings(delta_min=0.1, delta_max=0.05)
    with pytest.raises(ValueError, match="delta_window"):
        AdaptiveSettings(delta_window=1)


def _learning(learn: bool) -> AdaptivePolicy:
    """The policy with or without the learnt delta; the floor is min_inflight's (4), so the
    room shown is the delta's."""
    settings = AdaptiveSettings(learn_delta=learn, calibrated_floor=False)
    return AdaptivePolicy(Calibration(0.3, 1.07), 0.05, DEMAND, settings)


_SHALLOW = NodeState("a", 0.6, 0.75, inflight=4)  # d = 0.96, past Dis_avemax in 3 tasks of 0.05


def _shallow_window() -> SampleWindow:
    """Node a's last samples: d rose 0.01 per task in flight, from 0 to 6 tasks."""
    samples = tuple(DistanceSample(float(x), 0.9 + 0.01 * x) for x in range(7))
    return SampleWindow(samples, distance=math.hypot(0.6, 0.75))


def test_a_node_whose_d_moves_little_per_task_gets_the_room_its_samples_show():
    """A node whose samples show 0.01 per task takes more tasks than the constant 0.05 lets it."""
    state = AdaptiveState(samples=(("a", _shallow_window()),))
    tasks = _reads(20)
    learnt = _learning(True).decide(state, [_SHALLOW], tasks, 1.0, {"a": 4})
    fixed = _learning(False).decide(state, [_SHALLOW], tasks, 1.0, {"a": 4})
    assert learnt.deltas["a"] == pytest.approx(0.01)
    assert fixed.deltas["a"] == 0.05
    assert len(fixed.plan.assignments) == 2  # floor((1.07 - 0.9605) / 0.05)
    assert len(learnt.plan.assignments) == 10  # floor((1.07 - 0.9605) / 0.01)


def test_a_node_without_enough_samples_keeps_the_configured_delta():
    """With no window (or counts that do not spread) the learnt delta is the constant."""
    decision = _learning(True).decide(AdaptiveState(), [_SHALLOW], _reads(3), 1.0, {"a": 4})
    assert decision.deltas == {"a": 0.05}


def test_a_down_node_forgets_its_samples():
    """A DOWN node's window leaves the state (a restart changes its memory)."""
    state = AdaptiveState(samples=(("a", _shallow_window()),))
    down = NodeState("a", 0.6, 0.75, down=True)
    assert _learning(True).decide(state, [down], [], 1.0).state.samples == ()


def test_with_a_clock_a_new_sample_joins_the_window_with_the_mean_count():
    """A new sampled d adds one sample, paired with the in-flight count held since the last."""
    policy, state = _learning(True), AdaptiveState()
    state = policy.decide(state, [NodeState("a", 0.3, 0.2, inflight=3)], [], 0.0).state
    state = policy.decide(state, [NodeState("a", 0.3, 0.2, inflight=5)], [], 0.5).state
    state = policy.decide(state, [NodeState("a", 0.3, 0.4, inflight=5)], [], 1.0).state
    ((node, window),) = state.samples
    assert node == "a"
    assert window.samples == (DistanceSample(4.0, math.hypot(0.3, 0.4)),)


_CPU = st.sampled_from([0.2, 0.5, 0.8, 0.95, 1.0])
_ROUND_SEQUENCE = st.lists(
    st.tuples(_CPU, st.integers(0, 12), _CPU, st.integers(0, 12)), min_size=1, max_size=40
)
"""Per round, node a's CPU figure and in-flight count, then node b's."""


def _unfitted(state: AdaptiveState) -> AdaptiveState:
    """`state` with every window's fitted delta cleared, so `decide` fits each one afresh."""
    return replace(state, samples=tuple((n, replace(w, delta=None)) for n, w in state.samples))


@PROPERTY
@given(_ROUND_SEQUENCE)
def test_the_delta_fitted_once_per_sample_is_the_delta_fitted_every_round(rounds):
    """Over any sequence of rounds, the decision with the windows' cached deltas equals the
    one that fits every window again, and each delta is the fit of the window's samples."""
    policy, state = _learning(True), AdaptiveState()
    s = policy.settings
    tasks = _reads(6)
    for t, (cpu_a, count_a, cpu_b, count_b) in enumerate(rounds):
        nodes = [
            NodeState("a", 0.3, cpu_a, inflight=count_a),
            NodeState("b", 0.3, cpu_b, inflight=count_b),
        ]
        cached = policy.decide(state, nodes, tasks, 0.25 * t)
        afresh = policy.decide(_unfitted(state), nodes, tasks, 0.25 * t)
        assert (cached.deltas, cached.plan) == (afresh.deltas, afresh.plan)
        for node, window in cached.state.samples:
            fit = learnt_delta(window.samples, 0.05, s.delta_min, s.delta_max, s.delta_spread)
            assert cached.deltas[node] == window.delta == fit
        state = cached.state


_SHARED_MACHINE = [NodeState(n, 0.35, 1.0, inflight=4) for n in "ab"]
"""Two nodes on one busy machine: its CPU figure (1.0) puts both past Dis_avemax (d 1.06 >
1.07 - 0.05 x 4 after the sample), each with only 4 tasks of its own."""


def test_a_node_past_dis_avemax_takes_tasks_up_to_the_calibrated_floor():
    """Nodes whose sampled d is at Dis_avemax still fill to the calibrated floor (15 each)."""
    policy = AdaptivePolicy(Calibration(0.3, 1.07), 0.05, DEMAND, AdaptiveSettings())
    decision = policy.decide(AdaptiveState(), _SHARED_MACHINE, _reads(40), 1.0)
    assert policy.floor() == 15  # floor((1.07 - 0.3) / 0.05)
    assert len(decision.plan.assignments) == 2 * (15 - 4)


def test_without_the_calibrated_floor_such_nodes_take_nothing():
    """With calibrated_floor off, the same nodes are held at min_inflight (4): none placed."""
    settings = AdaptiveSettings(calibrated_floor=False)
    policy = AdaptivePolicy(Calibration(0.3, 1.07), 0.05, DEMAND, settings)
    decision = policy.decide(AdaptiveState(), _SHARED_MACHINE, _reads(40), 1.0)
    assert decision.plan.assignments == []
