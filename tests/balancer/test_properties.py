"""Properties of LBHScheduler.plan that hold for every input (hypothesis)."""

from __future__ import annotations

import copy
import math
from collections import Counter

from hypothesis import given, settings
from hypothesis import strategies as st

from balancer import Calibration, LBHScheduler, NodeState, Plan, Task, TaskClass, Zone

from .generators import Settings, bounds, calm, node_lists, task_lists, tight, zoned_nodes
from .generators import settings as scheduler_settings
from .reference import fits, lbh_of, order_of, reference_plan, zone_of

PROPERTY = settings(max_examples=150, deadline=None)


def _calm_round() -> st.SearchStrategy[tuple[Settings, list[NodeState], list[Task]]]:
    """Inputs where most rounds dispatch (nodes near the origin)."""
    return st.tuples(
        scheduler_settings(),
        st.builds(calm, node_lists(min_size=1), st.sampled_from([0.3, 0.5, 0.7])),
        task_lists(min_size=1),
    )


def _tight_round() -> st.SearchStrategy[tuple[Settings, list[NodeState], list[Task]]]:
    """Dispatching rounds where memory runs out, so tasks spill to the other zone or wait."""
    return st.tuples(
        st.builds(
            Settings,
            st.just(0.2),
            st.just(1.0),
            st.sampled_from([0.0, 0.05, 0.2]),
            st.fixed_dictionaries(
                {cls: st.sampled_from([1.0, 2.5, 5.0, 10.0]) for cls in TaskClass}
            ),
        ),
        st.builds(
            tight,
            zoned_nodes(0.6, 1.0),
            st.lists(st.sampled_from([0.0, 2.5, 5.0, 10.0, 20.0, 50.0]), min_size=1, max_size=4),
        ),
        task_lists(min_size=5),
    )


def _any_round() -> st.SearchStrategy[tuple[Settings, list[NodeState], list[Task]]]:
    """Inputs anywhere in the plane, paused rounds included."""
    return st.tuples(scheduler_settings(), node_lists(), task_lists())


def _round() -> st.SearchStrategy[tuple[Settings, list[NodeState], list[Task]]]:
    return st.one_of(_calm_round(), _tight_round(), _any_round())


def _replay(s: Settings, nodes: list[NodeState], tasks: list[Task], plan: Plan):
    """Yield (task, node, MB given per node before it, inflight per node before it) for each
    assignment in dispatch order."""
    by_node = {n.node_id: n for n in nodes}
    by_task = {t.task_id: t for t in tasks}
    inflight = {n.node_id: n.inflight for n in nodes}
    given_mb = dict.fromkeys(by_node, 0.0)
    for task_id, node_id in plan.assignments:
        task = by_task[task_id]
        yield task, by_node[node_id], dict(given_mb), dict(inflight)
        inflight[node_id] += 1
        given_mb[node_id] += s.demand(task.cls)


def _given_mb(s: Settings, tasks: list[Task], plan: Plan) -> dict[str, float]:
    """MB the round gave each node, summed in dispatch order."""
    demand = {t.task_id: s.demand(t.cls) for t in tasks}
    given_mb: dict[str, float] = {}
    for task_id, node_id in plan.assignments:
        given_mb[node_id] = given_mb.get(node_id, 0.0) + demand[task_id]
    return given_mb


@PROPERTY
@given(_round())
def test_same_input_gives_same_plan(case):
    """Two plans of equal inputs, even from separate schedulers, are equal."""
    s, nodes, tasks = case
    first = s.scheduler().plan(nodes, tasks)
    again = s.scheduler().plan(copy.deepcopy(nodes), copy.deepcopy(tasks))
    assert first == again
    assert first == s.scheduler().plan(nodes, tasks)


@PROPERTY
@given(_round())
def test_plan_does_not_change_its_inputs(case):
    """The NodeState and Task objects and the input sequences are left as they were."""
    s, nodes, tasks = case
    before = (copy.deepcopy(nodes), copy.deepcopy(tasks))
    s.scheduler().plan(nodes, tasks)
    assert (nodes, tasks) == before


@PROPERTY
@given(_round())
def test_each_task_assigned_at_most_once(case):
    """No task id appears twice among the assignments."""
    s, nodes, tasks = case
    plan = s.scheduler().plan(nodes, tasks)
    counts = Counter(task_id for task_id, _ in plan.assignments)
    assert all(n == 1 for n in counts.values())


@PROPERTY
@given(_round())
def test_assigned_plus_held_is_every_task(case):
    """Every task is either assigned or held, never both; held keeps the input order."""
    s, nodes, tasks = case
    plan = s.scheduler().plan(nodes, tasks)
    assigned = [task_id for task_id, _ in plan.assignments]
    assert sorted(assigned + plan.held) == sorted(t.task_id for t in tasks)
    assert not set(assigned) & set(plan.held)
    assert plan.held == [t.task_id for t in tasks if t.task_id in set(plan.held)]


@PROPERTY
@given(_round())
def test_nothing_goes_to_down_or_zone_iii_nodes(case):
    """Every assignment names a node of zone I or II."""
    s, nodes, tasks = case
    plan = s.scheduler().plan(nodes, tasks)
    assert {plan.zones[node_id] for _, node_id in plan.assignments} <= {Zone.I, Zone.II}


@PROPERTY
@given(_round())
def test_zones_follow_the_bounds(case):
    """Each node's zone is the spec's: DOWN, else I up to Dis_ave, II up to Dis_avemax, else III."""
    s, nodes, tasks = case
    plan = s.scheduler().plan(nodes, tasks)
    assert plan.zones == {n.node_id: zone_of(n, s) for n in nodes}
    assert plan.recycle == [n.node_id for n in nodes if zone_of(n, s) is Zone.III]


@PROPERTY
@given(_round())
def test_writes_go_to_zone_ii_only_when_zone_i_has_no_feasible_node(case):
    """At the moment a write lands in zone II, every zone I node is out of memory for it."""
    s, nodes, tasks = case
    plan = s.scheduler().plan(nodes, tasks)
    for task, node, given_mb, _ in _replay(s, nodes, tasks, plan):
        if task.cls is not TaskClass.RT and plan.zones[node.node_id] is Zone.II:
            need = s.demand(task.cls)
            zone_i = [n for n in nodes if plan.zones[n.node_id] is Zone.I]
            assert not any(fits(n, given_mb[n.node_id], need) for n in zone_i)


@PROPERTY
@given(_round())
def test_reads_go_to_zone_i_only_when_zone_ii_has_no_feasible_node(case):
    """At the moment a read lands in zone I, every zone II node is out of memory for it."""
    s, nodes, tasks = case
    plan = s.scheduler().plan(nodes, tasks)
    for task, node, given_mb, _ in _replay(s, nodes, tasks, plan):
        if task.cls is TaskClass.RT and plan.zones[node.node_id] is Zone.I:
            need = s.demand(task.cls)
            zone_ii = [n for n in nodes if plan.zones[n.node_id] is Zone.II]
            assert not any(fits(n, given_mb[n.node_id], need) for n in zone_ii)


@PROPERTY
@given(_round())
def test_chosen_node_has_smallest_predicted_distance_in_its_zone(case):
    """The node taken has the least (d + delta * inflight, id) among feasible nodes of its zone."""
    s, nodes, tasks = case
    plan = s.scheduler().plan(nodes, tasks)
    for task, node, given_mb, inflight in _replay(s, nodes, tasks, plan):
        need = s.demand(task.cls)
        zone = plan.zones[node.node_id]
        rivals = [
            n for n in nodes if plan.zones[n.node_id] is zone and fits(n, given_mb[n.node_id], need)
        ]

        def d_hat(n: NodeState, inflight: dict[str, int] = inflight) -> tuple[float, str]:
            return math.sqrt(n.memory**2 + n.cpu**2) + s.delta * inflight[n.node_id], n.node_id

        assert min(rivals, key=d_hat) == node


@PROPERTY
@given(_round())
def test_a_task_is_held_only_when_nothing_fits_it(case):
    """A held task of a dispatching round had no feasible node in zone I or II, or is a write
    behind a held write of its account."""
    s, nodes, tasks = case
    plan = s.scheduler().plan(nodes, tasks)
    if plan.paused:
        return
    given_mb = _given_mb(s, tasks, plan)
    held = set(plan.held)
    routable = [n for n in nodes if plan.zones[n.node_id] in (Zone.I, Zone.II)]
    for i, task in enumerate(tasks):
        if task.task_id not in held:
            continue
        # What a node was given only grows, so a node that fits now fitted when task was held.
        behind_held_write = task.cls is not TaskClass.RT and any(
            t.task_id in held
            and t.account == task.account is not None
            and t.cls is not TaskClass.RT
            and (t.enqueued_at, j) < (task.enqueued_at, i)
            for j, t in enumerate(tasks)
        )
        fits_now = any(fits(n, given_mb.get(n.node_id, 0.0), s.demand(task.cls)) for n in routable)
        assert behind_held_write or not fits_now


@PROPERTY
@given(_round())
def test_one_accounts_writes_keep_their_order(case):
    """An account's assigned writes are in age order, and none follows a held one."""
    s, nodes, tasks = case
    plan = s.scheduler().plan(nodes, tasks)
    position = {t.task_id: (t.enqueued_at, i) for i, t in enumerate(tasks)}
    by_task = {t.task_id: t for t in tasks}
    for account in {t.account for t in tasks if t.account is not None}:
        writes = [
            task_id
            for task_id, _ in plan.assignments
            if by_task[task_id].account == account and by_task[task_id].cls is not TaskClass.RT
        ]
        assert writes == sorted(writes, key=position.__getitem__)
        held = [
            position[t]
            for t in plan.held
            if by_task[t].account == account and by_task[t].cls is not TaskClass.RT
        ]
        if held and writes:
            assert max(position[w] for w in writes) < min(held)


@PROPERTY
@given(_round())
def test_reads_first_then_writes_by_class(case):
    """Assignments list reads oldest first, then writes in the order the spec's rules give."""
    s, nodes, tasks = case
    plan = s.scheduler().plan(nodes, tasks)
    dispatched = {task_id for task_id, _ in plan.assignments}
    expected = [tasks[i].task_id for i in order_of(tasks) if tasks[i].task_id in dispatched]
    assert [task_id for task_id, _ in plan.assignments] == expected


@PROPERTY
@given(_round())
def test_paused_exactly_when_lbh_is_negative(case):
    """paused is LBH < 0 with LBH computed from the spec's formula; a paused round assigns none."""
    s, nodes, tasks = case
    plan = s.scheduler().plan(nodes, tasks)
    expected = lbh_of(nodes, s)
    assert plan.lbh == expected
    assert plan.paused == (expected < 0)
    if plan.paused:
        assert plan.assignments == []


@PROPERTY
@given(_round())
def test_memory_constraint_always_holds(case):
    """The demand a round gives a node never exceeds the free memory it reported."""
    s, nodes, tasks = case
    plan = s.scheduler().plan(nodes, tasks)
    load = _given_mb(s, tasks, plan)
    for node in nodes:
        if node.free_memory_mb is not None and node.node_id in load:
            assert load[node.node_id] <= node.free_memory_mb


@PROPERTY
@given(_round())
def test_plan_matches_the_naive_model_of_the_spec(case):
    """The fast scheduler and a quadratic transcription of the spec agree on every round."""
    s, nodes, tasks = case
    plan = s.scheduler().plan(nodes, tasks)
    assert (plan.assignments, plan.held, plan.paused) == reference_plan(s, nodes, tasks)


@PROPERTY
@given(_round(), st.randoms(use_true_random=False))
def test_node_order_does_not_change_zones_or_health(case, rng):
    """Shuffling the nodes changes neither the zones, nor LBH, nor the pause."""
    s, nodes, tasks = case
    shuffled = list(nodes)
    rng.shuffle(shuffled)
    plan, other = s.scheduler().plan(nodes, tasks), s.scheduler().plan(shuffled, tasks)
    assert (plan.zones, plan.lbh, plan.paused) == (other.zones, other.lbh, other.paused)


@PROPERTY
@given(bounds(), st.floats(1e-100, 1.0), st.booleans())
def test_a_value_on_a_boundary_belongs_to_the_lower_zone(pair, scale, on_ave):
    """A node exactly on Dis_ave is in zone I, exactly on Dis_avemax in zone II."""
    low, high = pair
    calibration = Calibration(low, high)
    bound = calibration.dis_ave if on_ave else high
    if bound > 1.0 or bound < 1e-100:  # (bound, 0) must be a point of the unit plane
        return
    sched = LBHScheduler(low, high)
    node = NodeState("n", bound, 0.0) if scale < 0.5 else NodeState("n", 0.0, bound)
    # With bounds one ulp apart, Dis_ave can round onto Dis_avemax: then both are zone I's.
    lower_zone = Zone.I if on_ave or bound <= calibration.dis_ave else Zone.II
    assert sched.plan([node], []).zones["n"] is lower_zone


@PROPERTY
@given(
    st.floats(allow_nan=True, allow_infinity=True),
    st.floats(allow_nan=True, allow_infinity=True),
)
def test_invalid_bounds_are_refused(low, high):
    """Bounds outside 0 <= Dis_avemin < Dis_avemax <= sqrt(2) raise ValueError; others don't."""
    valid = math.isfinite(low) and math.isfinite(high) and 0 <= low < high <= math.sqrt(2)
    try:
        LBHScheduler(low, high)
    except ValueError:
        assert not valid
    else:
        assert valid
