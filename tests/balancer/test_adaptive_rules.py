"""Properties of each lbh_adaptive rule, a pure function of plain values (hypothesis)."""

from __future__ import annotations

import math
from dataclasses import replace

import pytest
from hypothesis import assume, given, settings
from hypothesis import strategies as st

from balancer import Zone
from balancer.adaptive_rules import (
    DistanceSample,
    NodeLoad,
    SampleWindow,
    aged_service,
    calibrated_floor,
    choose,
    deadlock_exit,
    decayed_mean,
    fits,
    fitted,
    lasted,
    latency_cost,
    learnt_delta,
    live_distance,
    memory_bound,
    observe_round,
    overdue_first,
    ramp_limit,
    room,
    service_estimates,
    since_while,
    usable_free_mb,
    valve_choice,
)

PROPERTY = settings(max_examples=150, deadline=None)
AVE, HIGH = 0.683, 1.071  # the simulator's Dis_ave and Dis_avemax

_D = st.floats(0.0, math.sqrt(2))
_DELTA = st.one_of(st.just(0.0), st.floats(0.001, 0.5))
_COUNT = st.integers(0, 40)
_FREE = st.one_of(st.none(), st.floats(-50.0, 500.0))
_TIME = st.floats(0.0, 1e4)


@st.composite
def _loads(draw: st.DrawFn, min_size: int = 0) -> list[NodeLoad]:
    ids = draw(st.lists(st.sampled_from("ABCDEFGH"), unique=True, min_size=min_size))
    return [
        NodeLoad(
            node_id,
            draw(st.integers(0, 6)),
            draw(st.sampled_from([0.2, 0.5, 0.683, 0.9, 1.2])),
            draw(st.integers(0, 3)),
            draw(st.one_of(st.none(), st.sampled_from([0.0, 4.0, 16.0, 100.0]))),
        )
        for node_id in ids
    ]


_SERVICE = st.sampled_from([0.0, 0.01, 0.03, 0.2, 1.0])


@st.composite
def _timed_loads(draw: st.DrawFn, min_size: int = 0, known: bool = False) -> list[NodeLoad]:
    """Loads with service times: every one known if `known`, else some missing."""
    service = _SERVICE if known else st.one_of(st.none(), _SERVICE)
    return [replace(n, service_s=draw(service)) for n in draw(_loads(min_size))]


@st.composite
def _zones(draw: st.DrawFn) -> tuple[dict[str, Zone], dict[str, float]]:
    ids = draw(st.lists(st.sampled_from("ABCDEF"), unique=True, max_size=6))
    zones = {i: draw(st.sampled_from(list(Zone))) for i in ids}
    distances = {i: draw(st.sampled_from([0.3, 0.7, 0.9, 1.1])) for i in ids}
    return zones, distances


# --- learnt delta -----------------------------------------------------------------------

LOW, HIGH_DELTA = 0.005, 0.05
_MEAN_COUNT = st.floats(0.0, 40.0)
_SAMPLE_D = st.floats(0.0, 1.4)


@st.composite
def _samples(draw: st.DrawFn, min_size: int = 0) -> list[DistanceSample]:
    counts = draw(st.lists(_MEAN_COUNT, min_size=min_size, max_size=30))
    return [DistanceSample(x, draw(_SAMPLE_D)) for x in counts]


@st.composite
def _spread_counts(draw: st.DrawFn, spread: float) -> list[float]:
    """Mean in-flight counts whose max - min is at least `spread`."""
    low = draw(st.floats(0.0, 20.0))
    rest = draw(st.lists(st.floats(low, low + 20.0), max_size=20))
    return [low, low + spread + draw(st.floats(0.01, 10.0)), *rest]


@PROPERTY
@given(_spread_counts(1.0), st.floats(0.0, 0.5), st.floats(LOW, HIGH_DELTA))
def test_learnt_delta_recovers_the_slope_of_noiseless_samples(counts, base, slope):
    """Samples on the line d = base + slope x count give back the slope."""
    samples = [DistanceSample(x, base + slope * x) for x in counts]
    assert learnt_delta(samples, 0.05, LOW, HIGH_DELTA, 1.0) == pytest.approx(slope, abs=1e-9)


@PROPERTY
@given(_samples(), st.floats(LOW, HIGH_DELTA), st.floats(0.0, 5.0))
def test_learnt_delta_never_leaves_the_clamp(samples, fallback, spread):
    """Whatever the samples, the delta lies within [delta_min, delta_max] (the fallback too)."""
    assert LOW <= learnt_delta(samples, fallback, LOW, HIGH_DELTA, spread) <= HIGH_DELTA


@PROPERTY
@given(_samples(), st.floats(0.0, 0.5), st.floats(0.5, 5.0))
def test_learnt_delta_falls_back_when_the_counts_do_not_spread(samples, fallback, spread):
    """Counts spread over less than min_spread tasks (or no sample) give the configured delta."""
    squeezed = [DistanceSample(min(s.inflight, 3.0 + 0.4 * spread), s.distance) for s in samples]
    squeezed = [DistanceSample(max(s.inflight, 3.0), s.distance) for s in squeezed]
    assert learnt_delta(squeezed, fallback, LOW, HIGH_DELTA, spread) == fallback


@PROPERTY
@given(_samples(min_size=2), st.floats(0.0, 0.3), st.data())
def test_a_higher_d_where_more_was_in_flight_never_lowers_the_delta(samples, rise, data):
    """Raising the d of a sample whose count is above the window's mean never lowers delta."""
    counts = [s.inflight for s in samples]
    mean = math.fsum(counts) / len(counts)
    above = [i for i, x in enumerate(counts) if x > mean]
    assume(above)
    k = data.draw(st.sampled_from(above))
    raised = [*samples]
    raised[k] = DistanceSample(samples[k].inflight, samples[k].distance + rise)
    before = learnt_delta(samples, 0.05, LOW, HIGH_DELTA, 0.5)
    assert learnt_delta(raised, 0.05, LOW, HIGH_DELTA, 0.5) >= before


@PROPERTY
@given(_samples(min_size=2), st.floats(0.0, 0.05))
def test_a_steeper_rise_with_the_count_never_lowers_the_delta(samples, extra):
    """Adding extra x count to every d never lowers the learnt delta."""
    steeper = [DistanceSample(s.inflight, s.distance + extra * s.inflight) for s in samples]
    before = learnt_delta(samples, 0.05, LOW, HIGH_DELTA, 0.5)
    assert learnt_delta(steeper, 0.05, LOW, HIGH_DELTA, 0.5) >= before - 1e-12


@PROPERTY
@given(_samples(), st.randoms(use_true_random=False))
def test_learnt_delta_does_not_depend_on_the_samples_order(samples, rng):
    """The fit is of a set of samples: shuffled, it gives the same delta."""
    shuffled = [*samples]
    rng.shuffle(shuffled)
    assert learnt_delta(shuffled, 0.05, LOW, HIGH_DELTA, 0.5) == learnt_delta(
        samples, 0.05, LOW, HIGH_DELTA, 0.5
    )


_ROUNDS = st.lists(st.tuples(st.integers(0, 20), st.floats(0.001, 0.5)), min_size=1, max_size=20)


@PROPERTY
@given(_D, _ROUNDS)
def test_rounds_between_two_samples_add_no_sample(d, rounds):
    """Rounds that read the same sampled d keep the window's samples as they are."""
    window, now = observe_round(SampleWindow(), d, 0, 0.0, 5), 0.0
    for count, gap in rounds:
        now += gap
        window = observe_round(window, d, count, now, 5)
    assert window.samples == ()


@PROPERTY
@given(_ROUNDS, st.floats(0.001, 0.5), st.floats(0.0, 1.0))
def test_a_new_sample_is_paired_with_the_mean_count_since_the_last(rounds, last_gap, d):
    """A new d closes the interval: its sample's count is the time-weighted mean of the
    counts the rounds saw since the last sample (each held until the next round)."""
    window, now, count, weighted = observe_round(SampleWindow(), 2.0, 0, 0.0, 5), 0.0, 0, []
    for next_count, gap in rounds:
        weighted.append((count, gap))
        now += gap
        window = observe_round(window, 2.0, next_count, now, 5)
        count = next_count
    weighted.append((count, last_gap))
    window = observe_round(window, d, 0, now + last_gap, 5)
    mean = math.fsum(c * g for c, g in weighted) / math.fsum(g for _, g in weighted)
    assert [s.distance for s in window.samples] == [d]
    assert window.samples[0].inflight == pytest.approx(mean)


@PROPERTY
@given(st.lists(_D, min_size=1, max_size=30), st.integers(2, 10))
def test_the_window_keeps_the_last_samples(distances, keep):
    """Each new d adds one sample, and only the last `keep` stay."""
    window = observe_round(SampleWindow(), -1.0, 1, 0.0, keep)
    expected: list[float] = []
    last = -1.0
    for t, d in enumerate(distances, start=1):
        window = observe_round(window, d, 1, float(t), keep)
        if d != last:
            expected.append(d)
        last = d
    assert [s.distance for s in window.samples] == expected[-keep:]
    assert all(s.inflight == 1.0 for s in window.samples)


@PROPERTY
@given(_samples(), st.floats(0.0, 0.05), st.floats(0.0, 0.05))
def test_fitted_keeps_a_window_already_fitted(samples, cached, other):
    """A window with a fitted delta keeps it: the fit is not run again."""
    window = SampleWindow(tuple(samples), delta=cached)
    assert fitted(window, lambda _: other) == window


@PROPERTY
@given(_samples(), st.floats(0.0, 0.05))
def test_fitted_fills_a_window_with_no_delta_with_the_fit_of_its_samples(samples, slope):
    """A window with no fitted delta gets the fit of its own samples, the rest unchanged."""
    window = SampleWindow(tuple(samples), distance=0.5)
    fit = fitted(window, lambda given: slope * len(given))
    assert fit == replace(window, delta=slope * len(samples))


@PROPERTY
@given(_D, _ROUNDS, st.floats(0.0, 0.05))
def test_rounds_between_two_samples_keep_the_fitted_delta(d, rounds, cached):
    """Rounds that read the same sampled d keep the window's fitted delta."""
    window, now = replace(observe_round(SampleWindow(), d, 0, 0.0, 5), delta=cached), 0.0
    for count, gap in rounds:
        now += gap
        window = observe_round(window, d, count, now, 5)
    assert window.delta == cached


@PROPERTY
@given(_D, st.floats(0.001, 0.5), st.floats(0.0, 0.05))
def test_a_new_sample_clears_the_fitted_delta(d, gap, cached):
    """A new sampled d adds a sample, so the fit of the old samples no longer stands."""
    window = replace(observe_round(SampleWindow(), 2.0, 3, 0.0, 5), delta=cached)
    window = observe_round(window, d, 3, gap, 5)
    assert len(window.samples) == 1
    assert window.delta is None


# --- calibrated floor -------------------------------------------------------------------

_AVEMIN = st.floats(0.0, 0.7)
_SPAN = st.floats(0.01, 0.7)
_FLOOR_DELTA = st.floats(0.001, 0.5)
_MIN_INFLIGHT = st.integers(1, 10)


@PROPERTY
@given(_AVEMIN, _SPAN, _DELTA, _MIN_INFLIGHT)
def test_the_calibrated_floor_is_never_below_min_inflight(low, span, delta, least):
    """Whatever the calibration and delta (0 included), the floor is at least min_inflight."""
    assert calibrated_floor(low, low + span, delta, least) >= least


@PROPERTY
@given(_AVEMIN, _SPAN, _FLOOR_DELTA, _MIN_INFLIGHT)
def test_a_node_holding_the_calibrated_floor_is_within_dis_avemax_by_its_own_load(
    low, span, delta, least
):
    """Above min_inflight, the floor's tasks at delta each take the idle d to Dis_avemax at most."""
    floor = calibrated_floor(low, low + span, delta, least)
    if floor > least:
        assert low + delta * floor <= low + span + 1e-9


@PROPERTY
@given(_AVEMIN, _SPAN, _FLOOR_DELTA, _MIN_INFLIGHT)
def test_one_task_past_the_calibrated_floor_would_cross_dis_avemax(low, span, delta, least):
    """The floor is the largest such count: one task more takes the own d past Dis_avemax."""
    floor = calibrated_floor(low, low + span, delta, least)
    assert low + delta * (floor + 1) > low + span - 1e-9


@PROPERTY
@given(_AVEMIN, _SPAN, _FLOOR_DELTA, _FLOOR_DELTA, _MIN_INFLIGHT)
def test_a_larger_delta_never_raises_the_calibrated_floor(low, span, d1, d2, least):
    """The more d a task adds, the fewer tasks the floor allows (never more)."""
    small, large = sorted((d1, d2))
    high = low + span
    assert calibrated_floor(low, high, large, least) <= calibrated_floor(low, high, small, least)


def test_the_simulators_calibration_floors_at_fifteen_tasks():
    """Dis_avemin 0.296, Dis_avemax 1.071, delta 0.05: floor(0.775 / 0.05) = 15 tasks."""
    assert calibrated_floor(0.296, 1.071, 0.05, 4) == 15


def test_with_a_delta_of_zero_the_floor_is_min_inflight():
    """A delta of 0 gives no count of tasks: the floor is min_inflight."""
    assert calibrated_floor(0.296, 1.071, 0.0, 4) == 4


# --- headroom ---------------------------------------------------------------------------


@PROPERTY
@given(_FREE, st.floats(0.0, 1000.0))
def test_headroom_is_taken_off_a_known_free_figure(free, headroom):
    """A known free figure shrinks by exactly the headroom; an unknown one stays unknown."""
    usable = usable_free_mb(free, headroom)
    assert usable is None if free is None else usable == free - headroom


@PROPERTY
@given(_FREE, st.floats(0.0, 100.0), st.floats(0.0, 100.0))
def test_more_headroom_never_fits_more(free, small, extra):
    """A task that fits with a larger headroom fits with a smaller one."""
    need = 10.0
    if fits(usable_free_mb(free, small + extra), need):
        assert fits(usable_free_mb(free, small), need)


# --- samples' age -----------------------------------------------------------------------


@PROPERTY
@given(_D, _COUNT, _COUNT, _DELTA)
def test_live_distance_moves_by_delta_per_task_since_the_sample(d, now, then, delta):
    """d now is the sample's d plus delta per task started since (minus per task finished),
    never below 0."""
    assert live_distance(d, now, then, delta) == max(0.0, d + delta * (now - then))


@PROPERTY
@given(_D, _COUNT, _DELTA)
def test_live_distance_is_the_sample_when_nothing_changed(d, count, delta):
    """With the same in-flight count as at the sample, d is the sample's."""
    assert live_distance(d, count, count, delta) == d


@PROPERTY
@given(_D, _COUNT, _COUNT, st.floats(0.001, 0.5))
def test_live_distance_grows_with_the_live_count(d, now, then, delta):
    """More tasks in flight now never means a smaller live d."""
    assert live_distance(d, now + 1, then, delta) >= live_distance(d, now, then, delta)


# --- order of placement -----------------------------------------------------------------

_AGES = st.lists(st.sampled_from([0.0, 1.0, 1.5, 2.0, 7.0]), max_size=30)
_ORDERED_AGES = _AGES.flatmap(
    lambda ages: st.tuples(st.permutations(range(len(ages))), st.just(ages))
)
_OVERDUE_S = st.sampled_from([0.0, 0.5, 2.0, 100.0])


@PROPERTY
@given(_ORDERED_AGES, st.floats(0.0, 10.0), _OVERDUE_S)
def test_overdue_first_places_every_task_once(ordered, now, overdue_s):
    """The order is a permutation of the base order's tasks."""
    order, ages = ordered
    assert sorted(overdue_first(order, ages, now, overdue_s)) == sorted(order)


@PROPERTY
@given(_ORDERED_AGES, st.floats(0.0, 10.0), _OVERDUE_S)
def test_overdue_tasks_go_first_oldest_first(ordered, now, overdue_s):
    """Every task waiting overdue_s or more comes before the others, in age order."""
    order, ages = ordered
    placed = overdue_first(order, ages, now, overdue_s)
    late = [now - ages[i] >= overdue_s for i in placed]
    assert late == sorted(late, reverse=True)
    late_ages = [ages[i] for i, is_late in zip(placed, late, strict=True) if is_late]
    assert late_ages == sorted(late_ages)


@PROPERTY
@given(_ORDERED_AGES, st.floats(0.0, 10.0), _OVERDUE_S)
def test_tasks_not_overdue_keep_the_base_order(ordered, now, overdue_s):
    """The tasks that are not overdue keep LBH's dispatch order among themselves."""
    order, ages = ordered
    placed = overdue_first(order, ages, now, overdue_s)
    on_time = [i for i in placed if now - ages[i] < overdue_s]
    assert on_time == [i for i in order if now - ages[i] < overdue_s]


@PROPERTY
@given(_ORDERED_AGES, _OVERDUE_S)
def test_without_a_clock_the_base_order_stands(ordered, overdue_s):
    """No clock, no overdue task: the order is the base order."""
    order, ages = ordered
    assert overdue_first(order, ages, None, overdue_s) == list(order)


# --- room (admission per node) ----------------------------------------------------------


@PROPERTY
@given(_D, st.floats(0.001, 0.5), _COUNT, st.integers(1, 10))
def test_room_keeps_predicted_distance_within_dis_avemax_above_the_floor(d, delta, inflight, fl):
    """Beyond the floor, taking its room never pushes a node's predicted d past Dis_avemax."""
    high = 1.0
    granted = room(d, high, delta, inflight, fl, 10_000)
    if granted > max(0, fl - inflight):
        assert d + delta * granted <= high + 1e-9


@PROPERTY
@given(_D, _DELTA, _COUNT, st.integers(1, 10))
def test_room_always_reaches_the_floor(d, delta, inflight, fl):
    """A node with fewer than `floor` tasks in flight may always take enough to reach it."""
    assert room(d, 1.0, delta, inflight, fl, 10_000) >= fl - inflight


@PROPERTY
@given(_D, _DELTA, _COUNT, st.integers(1, 10), st.integers(0, 50))
def test_room_never_exceeds_the_limit(d, delta, inflight, fl, limit):
    """Room is capped by the round's task count."""
    assert 0 <= room(d, 1.0, delta, inflight, fl, limit) <= limit


@PROPERTY
@given(_D, _D, st.floats(0.001, 0.5), _COUNT, st.integers(1, 10))
def test_room_shrinks_as_distance_grows(d1, d2, delta, inflight, fl):
    """A node further from the origin never has more room."""
    near, far = sorted((d1, d2))
    assert room(far, 1.0, delta, inflight, fl, 999) <= room(near, 1.0, delta, inflight, fl, 999)


# --- ramp -------------------------------------------------------------------------------


def test_no_ceiling_without_a_pause_behind():
    """With no pause to ramp after, there is no in-flight ceiling."""
    assert ramp_limit(None, 2, 8.0) is None


@PROPERTY
@given(st.floats(0.0, 100.0), st.floats(0.0, 100.0), st.integers(1, 10), st.floats(0.0, 50.0))
def test_ramp_ceiling_rises_with_time_from_its_start(t1, t2, start, per_s):
    """The ceiling starts at `start` and never falls as time since the resume grows."""
    early, late = sorted((t1, t2))
    assert ramp_limit(0.0, start, per_s) == start
    low, high = ramp_limit(early, start, per_s), ramp_limit(late, start, per_s)
    assert low is not None
    assert high is not None
    assert start <= low <= high


@PROPERTY
@given(st.floats(0.0, 100.0), st.integers(1, 10), st.floats(0.0, 50.0))
def test_ramp_releases_at_most_its_rate(t, start, per_s):
    """After t seconds the ceiling is at most start + per_s * t: a backlog is not dumped."""
    ceiling = ramp_limit(t, start, per_s)
    assert ceiling is not None
    assert ceiling <= start + per_s * t


# --- balancing --------------------------------------------------------------------------


@PROPERTY
@given(_loads(), st.sampled_from([0.0, 4.0, 16.0]), st.booleans())
def test_choice_has_room_and_memory(loads, need, is_write):
    """The chosen node has room left and fits the task's memory."""
    k = choose(loads, need, is_write, AVE, HIGH)
    if k is not None:
        assert loads[k].room_left > 0
        assert fits(loads[k].free_left_mb, need)


@PROPERTY
@given(_loads(), st.sampled_from([0.0, 4.0, 16.0]), st.booleans())
def test_choice_is_none_only_when_no_node_may_take_the_task(loads, need, is_write):
    """A task is refused only if no node has both room and memory for it."""
    possible = any(n.room_left > 0 and fits(n.free_left_mb, need) for n in loads)
    assert (choose(loads, need, is_write, AVE, HIGH) is None) == (not possible)


def _eligible(loads: list[NodeLoad], need: float) -> list[NodeLoad]:
    return [n for n in loads if n.room_left > 0 and fits(n.free_left_mb, need)]


@PROPERTY
@given(_loads(), st.sampled_from([0.0, 4.0, 16.0]))
def test_reads_go_to_the_fewest_in_flight_across_zones(loads, need):
    """With no service time known, a read goes to the eligible node of fewest live in-flight
    tasks, whatever its zone."""
    k = choose(loads, need, False, AVE, HIGH)
    if k is not None:
        best = min((n.inflight, n.node_id) for n in _eligible(loads, need))
        assert (loads[k].inflight, loads[k].node_id) == best


@PROPERTY
@given(_loads(), st.sampled_from([0.0, 4.0, 16.0]))
def test_writes_stay_out_of_zone_iii_when_another_node_may_take_them(loads, need):
    """A write goes to a predicted zone III node only if no node outside zone III may take it."""
    k = choose(loads, need, True, AVE, HIGH)
    outside = [n for n in _eligible(loads, need) if n.d_hat <= HIGH]
    if k is not None and outside:
        assert loads[k].d_hat <= HIGH


@PROPERTY
@given(_loads(), st.sampled_from([0.0, 4.0, 16.0]))
def test_writes_go_to_the_fewest_in_flight_zone_i_first(loads, need):
    """With no service time known, outside zone III a write takes the fewest in flight, and on
    a tie a zone I node."""
    k = choose(loads, need, True, AVE, HIGH)
    outside = [n for n in _eligible(loads, need) if n.d_hat <= HIGH]
    if k is not None and outside:
        fewest = min(n.inflight for n in outside)
        assert loads[k].inflight == fewest
        if any(n.inflight == fewest and n.d_hat <= AVE for n in outside):
            assert loads[k].d_hat <= AVE


# --- latency-aware choice --------------------------------------------------------------


def _cost(load: NodeLoad, service: float) -> tuple[float, int]:
    return latency_cost(load.inflight, service), load.inflight


@PROPERTY
@given(_timed_loads(), st.sampled_from([0.0, 4.0, 16.0]), st.booleans())
def test_timed_choice_has_room_and_memory_and_refuses_only_when_nothing_fits(loads, need, write):
    """Service times change which node, never whether: room and memory rule as before."""
    k = choose(loads, need, write, AVE, HIGH)
    assert (k is None) == (not _eligible(loads, need))
    if k is not None:
        assert loads[k].room_left > 0
        assert fits(loads[k].free_left_mb, need)


@PROPERTY
@given(_loads(), st.sampled_from([0.0, 4.0, 16.0]), st.booleans(), _SERVICE)
def test_equal_service_times_are_the_in_flight_rule(loads, need, is_write, service):
    """With one service time for every node, the choice is the one with none known."""
    timed = [replace(n, service_s=service) for n in loads]
    assert choose(timed, need, is_write, AVE, HIGH) == choose(loads, need, is_write, AVE, HIGH)


@PROPERTY
@given(_timed_loads(), st.sampled_from([0.0, 4.0, 16.0]))
def test_reads_go_to_the_lowest_expected_wait(loads, need):
    """A read goes to the eligible node of lowest (in flight + 1) x service time, then fewest
    in flight, then lowest id: a slower node gets nothing while another's cost is lower."""
    k = choose(loads, need, False, AVE, HIGH)
    service = service_estimates([n.service_s for n in loads])
    eligible = [i for i, n in enumerate(loads) if n in _eligible(loads, need)]
    if k is not None:
        best = min((_cost(loads[i], service[i]), loads[i].node_id) for i in eligible)
        assert (_cost(loads[k], service[k]), loads[k].node_id) == best


@PROPERTY
@given(_timed_loads(), st.sampled_from([0.0, 4.0, 16.0]))
def test_writes_go_to_the_lowest_expected_wait_outside_zone_iii_zone_i_first(loads, need):
    """Outside zone III a write takes the lowest cost, and on a tie a zone I node."""
    k = choose(loads, need, True, AVE, HIGH)
    service = service_estimates([n.service_s for n in loads])
    eligible = [i for i, n in enumerate(loads) if n in _eligible(loads, need)]
    outside = [i for i in eligible if loads[i].d_hat <= HIGH]
    if k is not None and outside:
        assert loads[k].d_hat <= HIGH
        cheapest = min(_cost(loads[i], service[i]) for i in outside)
        assert _cost(loads[k], service[k]) == cheapest
        if any(_cost(loads[i], service[i]) == cheapest and loads[i].d_hat <= AVE for i in outside):
            assert loads[k].d_hat <= AVE


@PROPERTY
@given(
    _timed_loads(min_size=2, known=True),
    st.booleans(),
    st.integers(1, 5),
    st.sampled_from([1.5, 3.0, 10.0]),
)
def test_a_slower_or_busier_other_node_never_changes_the_choice(loads, is_write, more, factor):
    """Raising another node's in-flight count or service time keeps the chosen node chosen."""
    k = choose(loads, 0.0, is_write, AVE, HIGH)
    assume(k is not None)
    for j, other in enumerate(loads):
        if j == k:
            continue
        for changed in (
            replace(other, inflight=other.inflight + more),
            replace(other, service_s=(other.service_s or 0.01) * factor),
        ):
            worse = [changed if i == j else n for i, n in enumerate(loads)]
            assert choose(worse, 0.0, is_write, AVE, HIGH) == k


@PROPERTY
@given(_timed_loads(min_size=2, known=True), st.booleans(), st.sampled_from([0.1, 0.5, 0.9]))
def test_a_faster_chosen_node_stays_chosen(loads, is_write, factor):
    """Lowering the chosen node's service time keeps it chosen."""
    k = choose(loads, 0.0, is_write, AVE, HIGH)
    assume(k is not None)
    faster = [
        replace(n, service_s=(n.service_s or 0.0) * factor) if i == k else n
        for i, n in enumerate(loads)
    ]
    assert choose(faster, 0.0, is_write, AVE, HIGH) == k


def test_a_node_k_times_slower_waits_until_the_other_costs_as_much():
    """Node B, 3 times slower than A, gets a read only once A's cost reaches B's (A with 2 in
    flight: 3 x 0.125 = 1 x 0.375), and then on the tie for having fewer in flight."""

    def loads(a_inflight: int) -> list[NodeLoad]:
        return [
            NodeLoad("A", a_inflight, 0.2, 9, None, 0.125),
            NodeLoad("B", 0, 0.2, 9, None, 0.375),
        ]

    picks = [loads(n)[choose(loads(n), 0.0, False, AVE, HIGH) or 0].node_id for n in range(5)]
    assert picks == ["A", "A", "B", "B", "B"]


@PROPERTY
@given(st.lists(st.one_of(st.none(), _SERVICE), max_size=8))
def test_a_node_without_data_takes_the_cheapest_known_figure(service):
    """Known figures stand, missing ones take the cheapest known, and with none known all
    are equal (the cost is then the in-flight rule)."""
    estimates = service_estimates(service)
    known = [s for s in service if s is not None]
    for given_s, estimate in zip(service, estimates, strict=True):
        if given_s is not None:
            assert estimate == given_s
        else:
            assert estimate == (min(known) if known else 1.0)


@PROPERTY
@given(st.integers(0, 40), st.integers(0, 40), st.floats(0.0, 10.0), st.floats(0.0, 10.0))
def test_latency_cost_grows_with_in_flight_and_service_time(n1, n2, s1, s2):
    """More in flight or a longer service time never costs less."""
    assert latency_cost(min(n1, n2), s1) <= latency_cost(max(n1, n2), s1)
    assert latency_cost(n1, min(s1, s2)) <= latency_cost(n1, max(s1, s2))


_SECONDS = st.floats(0.0, 100.0)


@PROPERTY
@given(_SECONDS, _SECONDS, st.floats(0.0, 60.0), st.floats(0.1, 30.0))
def test_the_ewma_lies_between_its_old_figure_and_the_sample(old, sample, elapsed, decay):
    """A new figure is a weighted mean of the old one and the sample."""
    new = decayed_mean(old, sample, elapsed, decay)
    assert min(old, sample) - 1e-9 <= new <= max(old, sample) + 1e-9


@PROPERTY
@given(_SECONDS, _SECONDS, st.floats(0.0, 60.0), st.floats(0.0, 60.0), st.floats(0.1, 30.0))
def test_the_longer_since_the_last_sample_the_more_the_new_one_weighs(old, sample, t1, t2, decay):
    """An older figure is forgotten more: the result is nearer the sample."""
    near = decayed_mean(old, sample, max(t1, t2), decay)
    far = decayed_mean(old, sample, min(t1, t2), decay)
    assert abs(near - sample) <= abs(far - sample) + 1e-9


@PROPERTY
@given(_SECONDS, _SECONDS, st.floats(0.0, 60.0), st.floats(0.1, 30.0))
def test_a_slower_sample_replaces_the_figure_at_once(old, sample, elapsed, decay):
    """The peak: a sample above the figure is the new figure, whenever it comes."""
    assume(sample > old)
    assert decayed_mean(old, sample, elapsed, decay) == sample


_FIGURES = st.dictionaries(st.sampled_from("ABCDE"), st.floats(0.0, 10.0), min_size=1)


@PROPERTY
@given(_FIGURES, st.floats(0.0, 100.0), st.floats(0.0, 100.0), st.floats(0.1, 30.0))
def test_an_aged_figure_lies_between_the_cheapest_and_its_own(figures, seen, now, decay):
    """Read with no new sample, a figure never exceeds its own nor falls below the cheapest."""
    aged = aged_service(figures, dict.fromkeys(figures, seen), now, decay)
    cheapest = min(figures.values())
    assert aged.keys() == figures.keys()
    for node, figure in figures.items():
        assert cheapest - 1e-9 <= aged[node] <= figure + 1e-9


@PROPERTY
@given(_FIGURES, st.floats(0.0, 50.0), st.floats(0.0, 50.0), st.floats(0.1, 30.0))
def test_the_longer_unheard_the_nearer_the_cheapest(figures, t1, t2, decay):
    """A figure read later, with no new sample, is no farther from the cheapest."""
    seen = dict.fromkeys(figures, 0.0)
    early = aged_service(figures, seen, min(t1, t2), decay)
    late = aged_service(figures, seen, max(t1, t2), decay)
    for node in figures:
        assert late[node] <= early[node] + 1e-9


@PROPERTY
@given(_FIGURES, st.floats(0.0, 100.0), st.floats(0.1, 30.0))
def test_a_figure_read_when_sampled_is_as_it_is(figures, now, decay):
    """No time since the last sample: the figures are the book's."""
    assert aged_service(figures, dict.fromkeys(figures, now), now, decay) == pytest.approx(figures)


@PROPERTY
@given(_SECONDS, st.floats(0.0, 60.0), st.floats(0.0, 30.0))
def test_the_first_sample_is_the_figure(sample, elapsed, decay):
    """With no figure yet, the sample is taken as it is."""
    assert decayed_mean(None, sample, elapsed, decay) == sample


# --- safety valve -----------------------------------------------------------------------


@PROPERTY
@given(_loads(), st.sampled_from([0.0, 1.0, 16.0]), st.integers(1, 3))
def test_valve_respects_memory(loads, need, per_node):
    """The valve never picks a node without memory for the read."""
    k = valve_choice(loads, need, {}, per_node)
    if k is not None:
        assert fits(loads[k].free_left_mb, need)


@PROPERTY
@given(_loads(min_size=1), st.integers(1, 3))
def test_valve_spreads_over_nodes(loads, per_node):
    """A node that had its share of valve reads this round gets no more."""
    full = {n.node_id: per_node for n in loads}
    assert valve_choice(loads, 0.0, full, per_node) is None
    k = valve_choice(loads, 0.0, {}, per_node)
    assert k is not None
    assert loads[k].inflight == min(n.inflight for n in loads)


# --- pause bookkeeping ------------------------------------------------------------------


@PROPERTY
@given(st.one_of(st.none(), _TIME), st.booleans(), _TIME)
def test_since_while_keeps_the_start_of_an_unbroken_stretch(previous, holds, now):
    """A stretch starts when its condition first holds, keeps that start, and ends with it."""
    since = since_while(previous, holds, now)
    if not holds:
        assert since is None
    else:
        assert since == (now if previous is None else previous)


@PROPERTY
@given(st.one_of(st.none(), _TIME), _TIME, st.floats(0.0, 100.0))
def test_lasted_needs_a_stretch_of_the_full_length(since, now, limit):
    """Nothing that is not happening has lasted; a stretch has once now - since >= limit."""
    assert lasted(since, now, limit) == (since is not None and now - since >= limit)


# --- deadlock exit ----------------------------------------------------------------------


@PROPERTY
@given(st.floats(-3.0, 3.0), st.floats(-3.0, 3.0))
def test_memory_bound_needs_both_healths_below_zero(lbh, memory_lbh):
    """Memory holds LBH below 0 only if LBH and the memory-only LBH both are."""
    assert memory_bound(lbh, memory_lbh) == (lbh < 0.0 and memory_lbh < 0.0)


@PROPERTY
@given(_zones(), st.one_of(st.none(), st.floats(0.0, 20.0)), st.floats(0.0, 20.0))
def test_exit_names_the_highest_d_routable_node(zoning, since, now):
    """When the exit fires it names the routable node of highest d, ties to the lowest id."""
    zones, distances = zoning
    node = deadlock_exit(zones, distances, since, now, 5.0)
    if node is not None:
        routable = [n for n, z in zones.items() if z is not Zone.DOWN]
        assert node == min(routable, key=lambda n: (-distances[n], n))


@PROPERTY
@given(_zones(), st.one_of(st.none(), st.floats(0.0, 20.0)), st.floats(0.0, 20.0))
def test_exit_fires_only_after_max_pause_with_no_zone_iii_and_a_spare_node(zoning, since, now):
    """The exit needs max_pause of memory-bound LBH, no zone III node, two routable nodes."""
    zones, distances = zoning
    routable = [z for z in zones.values() if z is not Zone.DOWN]
    due = lasted(since, now, 5.0) and Zone.III not in routable and len(routable) >= 2
    assert (deadlock_exit(zones, distances, since, now, 5.0) is not None) == due
