"""The baselines and the factory (spec section 8): one interface, one Plan type."""

from __future__ import annotations

from collections import Counter
from collections.abc import Collection

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from balancer import (
    STRATEGY_NAMES,
    AdaptiveSettings,
    LBHAdaptive,
    LBHScheduler,
    NodeState,
    Plan,
    Task,
    TaskClass,
    make_strategy,
)
from balancer.strategies import _Baseline

from .generators import node_lists, task_lists

BASELINES = [name for name in STRATEGY_NAMES if not name.startswith("lbh")]
PROPERTY = settings(max_examples=100, deadline=None)


def _make(name: str, **settings: object):
    return make_strategy(name, dis_avemin=0.2, dis_avemax=1.0, **settings)  # type: ignore[arg-type]


def _nodes(count: int, *, down: Collection[str] = ()) -> list[NodeState]:
    return [NodeState(f"n{i}", 0.1 * i, 0.1, down=f"n{i}" in down) for i in range(count)]


def _tasks(count: int) -> list[Task]:
    return [Task(f"t{i}", TaskClass.RT if i % 2 else TaskClass.MCT) for i in range(count)]


def test_factory_knows_every_name():
    """make_strategy builds each listed strategy, answering to its own name."""
    assert [_make(name).name for name in STRATEGY_NAMES] == list(STRATEGY_NAMES)


def test_factory_builds_lbh_with_its_settings():
    """ "lbh" is the LBHScheduler with the given bounds, delta and memory table."""
    sched = _make("lbh", delta=0.1, task_memory_mb={TaskClass.DT: 8.0})
    assert isinstance(sched, LBHScheduler)
    assert (sched.delta, sched.task_memory_mb[TaskClass.DT]) == (0.1, 8.0)


def test_factory_refuses_unknown_names():
    """An unknown name raises ValueError listing the known ones."""
    with pytest.raises(ValueError, match=r"unknown strategy 'fastest'.*round_robin"):
        _make("fastest")


@pytest.mark.parametrize("name", STRATEGY_NAMES)
def test_factory_validates_bounds_for_every_strategy(name):
    """Every strategy needs valid bounds, since every plan reports zones and LBH."""
    with pytest.raises(ValueError, match="dis_avemin must be < dis_avemax"):
        make_strategy(name, dis_avemin=1.0, dis_avemax=0.5)


@pytest.mark.parametrize("name", BASELINES)
@PROPERTY
@given(nodes=node_lists(), tasks=task_lists())
def test_baseline_places_every_task_on_an_up_node(name, nodes, tasks):
    """With a routable node, a baseline assigns every task once, never to a DOWN node, in the
    shared dispatch order; with none, it holds every task. It never pauses."""
    plan = _make(name).plan(nodes, tasks)
    assert isinstance(plan, Plan)
    assert plan.paused is False
    down = {n.node_id for n in nodes if n.down}
    if len(down) == len(nodes):
        assert (plan.assignments, plan.held) == ([], [t.task_id for t in tasks])
        return
    assert plan.held == []
    assert sorted(t for t, _ in plan.assignments) == sorted(t.task_id for t in tasks)
    assert not {node for _, node in plan.assignments} & down
    lbh_order = LBHScheduler(0.0, 1.414).plan([NodeState("x", 0, 0)], tasks).assignments
    assert [t for t, _ in plan.assignments] == [t for t, _ in lbh_order]


@pytest.mark.parametrize("name", BASELINES)
@PROPERTY
@given(nodes=node_lists(), tasks=task_lists())
def test_baseline_reports_the_same_zones_and_health_as_lbh(name, nodes, tasks):
    """Zones, distances and LBH of a baseline's plan are those LBH computes."""
    plan, lbh = _make(name).plan(nodes, tasks), _make("lbh").plan(nodes, tasks)
    assert (plan.zones, plan.distances, plan.lbh) == (lbh.zones, lbh.distances, lbh.lbh)


@pytest.mark.parametrize("name", BASELINES)
@PROPERTY
@given(rounds=st.lists(st.tuples(node_lists(), task_lists()), max_size=4))
def test_baseline_is_deterministic_for_a_call_sequence(name, rounds):
    """Two instances with the same settings answer a sequence of rounds identically."""
    first, second = _make(name, seed=7), _make(name, seed=7)
    for nodes, tasks in rounds:
        assert first.plan(nodes, tasks) == second.plan(nodes, tasks)


@pytest.mark.parametrize("name", BASELINES)
def test_baseline_does_not_recycle_unless_asked(name):
    """recycle is empty by default and lists zone III nodes with recycle=True."""
    nodes = [NodeState("hot", 0.9, 0.9), NodeState("ok", 0.0, 0.0)]
    assert _make(name).plan(nodes, []).recycle == []
    assert _make(name, recycle=True).plan(nodes, []).recycle == ["hot"]


@pytest.mark.parametrize("name", BASELINES)
def test_baseline_uses_zone_iii_nodes(name):
    """Baselines ignore zones: with only a zone III node up, it takes the work."""
    plan = _make(name).plan([NodeState("hot", 1.0, 1.0)], _tasks(3))
    assert {node for _, node in plan.assignments} == {"hot"}


def test_round_robin_cycles_over_up_nodes():
    """Round robin visits the routable nodes in input order, skipping DOWN ones."""
    plan = _make("round_robin").plan(_nodes(3, down={"n1"}), _tasks(5))
    assert [node for _, node in plan.assignments] == ["n0", "n2", "n0", "n2", "n0"]


def test_round_robin_cursor_carries_over_rounds():
    """The next round starts where the last one stopped."""
    strategy, nodes = _make("round_robin"), _nodes(3)
    strategy.plan(nodes, _tasks(2))
    assert [node for _, node in strategy.plan(nodes, _tasks(2)).assignments] == ["n2", "n0"]


def test_random_uses_every_node_and_depends_on_the_seed():
    """Over many tasks every node is picked; another seed gives another plan."""
    nodes, tasks = _nodes(4), _tasks(200)
    plan = _make("random", seed=1).plan(nodes, tasks)
    assert set(Counter(node for _, node in plan.assignments)) == {"n0", "n1", "n2", "n3"}
    assert plan != _make("random", seed=2).plan(nodes, tasks)


def test_least_inflight_levels_the_load():
    """Least connections fills the idlest nodes first; ties go to the lowest id."""
    nodes = [NodeState("a", 0.1, 0.1, inflight=3), NodeState("b", 0.1, 0.1, inflight=0)]
    plan = _make("least_inflight").plan(nodes, _tasks(5))
    assert [node for _, node in plan.assignments] == ["b", "b", "b", "a", "b"]


@PROPERTY
@given(
    st.lists(st.integers(0, 5), min_size=2, max_size=6),
    st.integers(0, 30),
    st.integers(0, 2**32 - 1),
)
def test_p2c_never_picks_the_unique_most_loaded_node(loads, count, seed):
    """Of two distinct nodes the less loaded wins, so a node strictly busier than every other
    never gets a task."""
    nodes = [NodeState(f"n{i}", 0.1, 0.1, inflight=load) for i, load in enumerate(loads)]
    current = {n.node_id: n.inflight for n in nodes}
    for _, node in _make("p2c", seed=seed).plan(nodes, _tasks(count)).assignments:
        others = [load for other, load in current.items() if other != node]
        assert current[node] <= max(others)
        current[node] += 1


def test_p2c_with_one_node_uses_it():
    """With a single routable node there is no second choice: it takes everything."""
    plan = _make("p2c").plan(_nodes(2, down={"n1"}), _tasks(3))
    assert {node for _, node in plan.assignments} == {"n0"}


def test_single_sends_everything_to_the_lowest_id_up_node():
    """Without node_id, single picks the routable node of lowest id."""
    plan = _make("single").plan(_nodes(3, down={"n0"}), _tasks(4))
    assert {node for _, node in plan.assignments} == {"n1"}


def test_single_with_a_named_node_holds_while_it_is_down():
    """single(node_id) uses that node only, and holds everything while it is DOWN."""
    assert {n for _, n in _make("single", node_id="n2").plan(_nodes(3), _tasks(3)).assignments} == {
        "n2"
    }
    plan = _make("single", node_id="n2").plan(_nodes(3, down={"n2"}), _tasks(3))
    assert (plan.assignments, plan.held) == ([], ["t0", "t1", "t2"])


def test_baselines_refuse_duplicate_node_ids():
    """Duplicate node ids are as invalid for a baseline as for LBH."""
    with pytest.raises(ValueError, match="more than once"):
        _make("round_robin").plan([NodeState("a", 0, 0), NodeState("a", 0, 0)], [])


def test_baseline_base_class_needs_a_choice():
    """The shared frame alone does not know how to choose."""
    with pytest.raises(NotImplementedError):
        _Baseline(LBHScheduler(0.2, 1.0).calibration).plan(_nodes(1), _tasks(1))


def test_make_strategy_hands_lbh_adaptive_its_settings() -> None:
    """`adaptive=` reaches lbh_adaptive's policy (a caller's pause setting, for example)."""
    strategy = make_strategy(
        "lbh_adaptive", dis_avemin=0.1, dis_avemax=1.0, adaptive=AdaptiveSettings(max_pause_s=2.0)
    )
    assert isinstance(strategy, LBHAdaptive)
    assert strategy.policy.settings.max_pause_s == 2.0
