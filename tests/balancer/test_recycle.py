"""The recycling policy of spec section 7: streaks, one at a time, last node, cool-down."""

from __future__ import annotations

import pytest

from balancer import RecyclePolicy, RecycleState, Zone

HOT, OK, DOWN = Zone.III, Zone.I, Zone.DOWN


def _run(policy: RecyclePolicy, samples: list[dict[str, Zone]], state: RecycleState | None = None):
    """Observe one sample per second; return the final state and what was named each time."""
    state = state or RecycleState()
    named = []
    for now, zones in enumerate(samples):
        state, node = policy.observe(state, zones, float(now))
        named.append(node)
    return state, named


def test_defaults():
    """restart_after defaults to 3 samples, the cool-down to 60 s."""
    assert (RecyclePolicy().restart_after, RecyclePolicy().cooldown_s) == (3, 60.0)


def test_recycles_after_consecutive_zone_iii_samples():
    """A node is named on its third consecutive zone III sample, not before."""
    _, named = _run(RecyclePolicy(), [{"a": HOT, "b": OK}] * 3)
    assert named == [None, None, "a"]


def test_streak_resets_when_the_node_leaves_zone_iii():
    """A sample outside zone III starts the count again."""
    samples = [{"a": z, "b": OK} for z in (HOT, HOT, OK, HOT, HOT)]
    _, named = _run(RecyclePolicy(), samples)
    assert named == [None] * 5


def test_one_node_at_a_time():
    """While a restart runs, no other node is named, however long it stays in zone III."""
    state, named = _run(RecyclePolicy(restart_after=1), [{"a": HOT, "b": HOT, "c": OK}] * 3)
    assert named == ["a", None, None]
    assert state.restarting == "a"


def test_next_node_follows_when_the_restart_finishes():
    """After `finished`, the next due node is named at the next sample."""
    policy = RecyclePolicy(restart_after=1)
    state, _ = _run(policy, [{"a": HOT, "b": HOT, "c": OK}])
    state = policy.finished(state, "a", now=1.0)
    state, node = policy.observe(state, {"a": OK, "b": HOT, "c": OK}, 2.0)
    assert node == "b"


def test_never_the_last_routable_node():
    """A zone III node is not recycled when every other node is DOWN."""
    _, named = _run(RecyclePolicy(restart_after=1), [{"a": HOT, "b": DOWN}] * 3)
    assert named == [None] * 3


def test_a_lone_node_is_never_recycled():
    """A one-node cluster keeps its node."""
    _, named = _run(RecyclePolicy(restart_after=1), [{"a": HOT}] * 3)
    assert named == [None] * 3


def test_cool_down_blocks_an_early_second_restart():
    """Within cooldown_s of its restart finishing a node is not recycled again; after, it is."""
    policy = RecyclePolicy(restart_after=1, cooldown_s=10.0)
    state, _ = _run(policy, [{"a": HOT, "b": OK}])
    state = policy.finished(state, "a", now=5.0)
    state, early = policy.observe(state, {"a": HOT, "b": OK}, 14.9)
    state, late = policy.observe(state, {"a": HOT, "b": OK}, 15.0)
    assert (early, late) == (None, "a")


def test_longest_streak_first_then_lowest_id():
    """Among due nodes the one longest in zone III goes first; ties go to the lowest id."""
    policy = RecyclePolicy(restart_after=2)
    samples = [{"b": HOT, "c": OK, "z": OK}, {"b": HOT, "c": HOT, "z": OK}]
    samples.append({"b": HOT, "c": HOT, "z": OK})
    _, named = _run(policy, samples)
    assert named == [None, "b", None]
    _, tied = _run(policy, [{"c": HOT, "b": HOT, "z": OK}] * 2)
    assert tied == [None, "b"]


def test_observe_does_not_change_the_given_state():
    """The policy is pure: the state passed in is left as it was."""
    state = RecycleState(streaks={"a": 2})
    RecyclePolicy().observe(state, {"a": HOT, "b": OK}, 0.0)
    assert state == RecycleState(streaks={"a": 2})


def test_operator_restart_counts_as_the_one_running():
    """`start` marks an operator's restart; a second start while it runs is refused."""
    policy = RecyclePolicy()
    state = policy.start(RecycleState(), "b")
    assert state.restarting == "b"
    with pytest.raises(ValueError, match="one node at a time"):
        policy.start(state, "a")


def test_finished_must_name_the_restarting_node():
    """Reporting the end of a restart that is not running is a caller bug."""
    with pytest.raises(ValueError, match="is not the node restarting"):
        RecyclePolicy().finished(RecycleState(), "a", 0.0)


@pytest.mark.parametrize(("field", "value"), [("restart_after", 0), ("cooldown_s", -1.0)])
def test_invalid_settings_are_refused(field, value):
    """restart_after must be >= 1 and cooldown_s >= 0."""
    with pytest.raises(ValueError, match=field):
        RecyclePolicy(**{field: value})
