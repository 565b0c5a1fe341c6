"""The simulator: workload mix, node physics, determinism, like-for-like runs, outputs."""

from __future__ import annotations

import dataclasses
import math
from collections import Counter

import numpy as np
import pytest

from balancer import TaskClass
from balancer.sim import (
    DEFAULT_RUNS,
    KINDS,
    TASK_MEMORY_MB,
    NodeModel,
    RunSpec,
    SimConfig,
    compare,
    make_scenario,
    make_trace,
    run,
)
from balancer.sim.__main__ import main, parse_seeds
from balancer.sim.engine import FIXED_DELTA_LABEL, node_speeds, reported_figures
from balancer.sim.node import SimNode
from balancer.sim.report import chart, csv_text, table, timeline_csv_text

# Small and quick: 10 s of light load, a short burst, no time to waste on cut-off runs.
LIGHT = SimConfig(rate=40.0, duration_s=10.0, burst=30, burst_at_s=5.0, time_limit_s=60.0)


def _scenario(config: SimConfig = LIGHT, seed: int = 3):
    return make_scenario(config, np.random.default_rng(seed), "light")


def test_kinds_follow_table_5_1():
    """The eleven operations of table 5.1 with their shares: 55% reads, 45% writes."""
    assert len(KINDS) == 11
    assert math.fsum(k.share for k in KINDS) == pytest.approx(1.0)
    by_class: dict[TaskClass, float] = dict.fromkeys(TaskClass, 0.0)
    for kind in KINDS:
        by_class[kind.cls] += kind.share
    assert by_class[TaskClass.RT] == pytest.approx(0.55)
    assert by_class[TaskClass.MCT] == pytest.approx(0.30)
    assert by_class[TaskClass.MAT] == pytest.approx(0.10)
    assert by_class[TaskClass.DT] == pytest.approx(0.05)


def test_scheduler_demand_table_is_each_class_heaviest_kind():
    """The scheduler is told each class's largest in-flight memory."""
    for cls in TaskClass:
        assert TASK_MEMORY_MB[cls] == max(k.memory_mb for k in KINDS if k.cls is cls)


def test_trace_mix_matches_the_shares():
    """Over a long trace every kind's frequency is close to its share."""
    trace = make_trace(np.random.default_rng(0), rate=1000.0, duration_s=30.0)
    counts = Counter(a.kind.name for a in trace)
    for kind in KINDS:
        assert counts[kind.name] / len(trace) == pytest.approx(kind.share, abs=0.01)


def test_trace_is_ordered_with_unique_ids_and_owned_writes():
    """Arrivals are in time order, ids are unique, writes have an account and reads none."""
    trace = make_trace(np.random.default_rng(0), rate=200.0, duration_s=5.0, burst=50)
    times = [a.task.enqueued_at for a in trace]
    assert times == sorted(times)
    assert len({a.task.task_id for a in trace}) == len(trace)
    assert all((a.task.account is None) == (a.task.cls is TaskClass.RT) for a in trace)


def test_burst_arrives_at_once():
    """The burst adds its tasks at exactly the burst time."""
    trace = make_trace(np.random.default_rng(0), rate=10.0, duration_s=5.0, burst=40, burst_at_s=2)
    assert sum(a.task.enqueued_at == 2.0 for a in trace) == 40


def test_same_seed_same_scenario():
    """A scenario is a function of its config and seed."""
    assert _scenario() == _scenario()
    assert _scenario().trace != _scenario(seed=4).trace


def test_calibration_brackets_idle_and_saturated_nodes():
    """Dis_avemin is an idle node's distance; Dis_avemax is larger (a saturated node's)."""
    model = NodeModel()
    cal = _scenario().calibration
    assert cal.dis_avemin == pytest.approx(math.hypot(model.base_mb / model.budget_mb, 0.04))
    assert cal.dis_avemax > cal.dis_avemin


def test_a_run_is_deterministic():
    """Running one strategy twice on one scenario gives identical results."""
    scenario = _scenario()
    for spec in DEFAULT_RUNS:
        assert run(scenario, spec) == run(scenario, spec)


def test_every_strategy_sees_the_same_trace_and_finishes_light_load():
    """Under light load each strategy but single completes every task of the shared trace
    exactly once."""
    scenario = _scenario()
    results = compare(scenario)
    assert [r.label for r in results] == [spec.label for spec in DEFAULT_RUNS]
    for r in results:
        assert r.tasks == len(scenario.trace)
        assert r.completed <= r.tasks
        if r.label != "single":
            assert r.completed == r.tasks
            assert r.completion_s >= scenario.trace[-1].task.enqueued_at
            assert 0 < r.p50_ms <= r.p95_ms <= r.p99_ms


def test_only_runs_with_recycling_recycle():
    """The recycling policy only acts for runs that ask for it."""
    config = dataclasses.replace(LIGHT, rate=150.0, duration_s=20.0, time_limit_s=40.0)
    scenario = _scenario(config)
    for spec in DEFAULT_RUNS:
        if not spec.recycle:
            assert run(scenario, spec).recycles == 0


def test_lbh_pauses_and_opens_the_safety_valve_under_overload():
    """Under a long overload LBH pauses, and after max_pause reads are forced through."""
    config = dataclasses.replace(LIGHT, rate=260.0, duration_s=15.0, burst=0, time_limit_s=30.0)
    result = run(_scenario(config), RunSpec("lbh", "lbh", recycle=True))
    assert result.paused_s > config.max_pause_s
    assert result.forced > 0
    assert result.held > 0


def test_baselines_never_pause():
    """Only LBH pauses; baselines dispatch whenever a node is up."""
    for r in compare(_scenario(), [s for s in DEFAULT_RUNS if s.strategy != "lbh"]):
        assert (r.paused_s, r.forced) == (0.0, 0)


def test_node_shares_its_cpu_between_calls():
    """Two equal calls on an idle node both finish after twice the work (processor sharing)."""
    arrival = make_trace(np.random.default_rng(0), rate=50.0, duration_s=1.0)[0]
    node = SimNode("n", NodeModel())
    node.add(arrival, 0.0)
    node.add(arrival, 0.0)
    assert node.next_finish() == pytest.approx(2 * arrival.kind.work_s)
    assert len(node.finish(node.next_finish())) == 2


def test_memory_pressure_slows_a_node():
    """A node whose memory is past the pressure point serves slower."""
    node = SimNode("n", NodeModel())
    fresh = node.capacity()
    node.leak_mb = 0.9 * node.model.budget_mb - node.model.base_mb
    assert node.capacity() < fresh


def test_restart_clears_the_leak_and_the_calls():
    """Killing a node drops its calls (returned for re-queueing) and its leaked memory."""
    trace = make_trace(np.random.default_rng(0), rate=50.0, duration_s=1.0)
    node = SimNode("n", NodeModel(), leak_mb=300.0)
    node.add(trace[0], 0.0)
    assert node.kill(0.001) == [trace[0]]
    assert (node.jobs, node.leak_mb, node.memory_mb) == ([], 0.0, node.model.base_mb)


def test_node_beyond_its_budget_is_out_of_memory():
    """Only memory above the budget kills the node; exactly at the budget it lives."""
    node = SimNode("n", NodeModel())
    node.leak_mb = node.model.budget_mb - node.model.base_mb
    assert not node.out_of_memory()
    node.leak_mb += 1.0
    assert node.out_of_memory()


def test_noisy_neighbour_hides_cpu_from_the_sample():
    """While a neighbour takes the CPU, the node's own CPU ratio is lower though it is busy."""
    arrival = make_trace(np.random.default_rng(0), rate=50.0, duration_s=1.0)[0]
    quiet, noisy = SimNode("q", NodeModel()), SimNode("n", NodeModel(), noise=0.5)
    for node in (quiet, noisy):
        node.add(dataclasses.replace(arrival, kind=dataclasses.replace(arrival.kind, work_s=5)), 0)
        node.advance(1.0)
    assert noisy.sample(0.0, 1.0)[1] < quiet.sample(0.0, 1.0)[1] == 1.0


def test_outputs_name_every_run():
    """The table, both CSVs and the chart cover every run."""
    results = compare(_scenario(), DEFAULT_RUNS[:3])
    text = table(results)
    rows = csv_text(results).splitlines()
    assert all(r.label in text for r in results)
    assert rows[0].startswith("scenario,label,rate")
    assert len(rows) == 4
    assert len(timeline_csv_text(results).splitlines()) == 1 + sum(len(r.timeline) for r in results)
    assert len(chart(results, time_limit_s=60.0).axes) == 5  # four panels and a twin axis


def test_command_writes_csv_and_png(tmp_path, capsys):
    """`python -m balancer.sim` prints the table and writes summary.csv, timeline.csv, sim.png."""
    argv = ["--rates", "30", "--duration", "4", "--burst", "20", "--burst-at", "2"]
    assert main([*argv, "--out", str(tmp_path)]) == 0
    assert {p.name for p in tmp_path.iterdir()} == {"summary.csv", "timeline.csv", "sim.png"}
    out = capsys.readouterr().out
    assert "scenario steady-30" in out
    assert "scenario burst-30" in out
    assert "scenario creep-120" in out
    assert "scenario hetero-160" in out
    assert "scenario loaded-160" in out


def test_creep_scenario_starts_nodes_with_leaked_memory():
    """A creep scenario draws each node's starting memory within its bounds; others start fresh."""
    config = dataclasses.replace(LIGHT, creep_from=0.55, creep_to=0.68)
    leaks = _scenario(config).start_leak_mb
    model = config.model
    assert len(leaks) == config.nodes
    for leak in leaks:
        assert 0.55 <= (model.base_mb + leak) / model.budget_mb <= 0.68
    assert _scenario().start_leak_mb == ()


def test_adding_a_creep_does_not_change_the_trace():
    """The starting leaks are drawn last, so the trace and neighbour stay as without them."""
    plain, crept = _scenario(), _scenario(dataclasses.replace(LIGHT, creep_to=0.6))
    assert (plain.trace, plain.noise) == (crept.trace, crept.noise)


def test_node_speeds_default_to_one_slow_node_or_follow_the_config():
    """Without speeds the last node runs at slow_speed; with them, each node at its own."""
    assert node_speeds(LIGHT) == (1.0, 1.0, 1.0, 1.0, LIGHT.slow_speed)
    given = dataclasses.replace(LIGHT, speeds=(1.6, 1.2, 1.0, 0.6, 0.3))
    assert node_speeds(given) == (1.6, 1.2, 1.0, 0.6, 0.3)
    with pytest.raises(ValueError, match="speeds"):
        node_speeds(dataclasses.replace(LIGHT, speeds=(1.0,)))


def test_lbh_adaptive_finishes_light_load_without_pausing_the_cluster():
    """Under light load lbh_adaptive sends everything and never pauses or recycles."""
    result = run(_scenario(), RunSpec("lbh_adaptive", "lbh_adaptive", recycle=True))
    assert result.completed == result.tasks
    assert (result.paused_s, result.forced, result.recycles, result.crashes) == (0.0, 0, 0, 0)


def test_seeds_parse_as_ranges_and_lists():
    """'1-5' is seeds 1 to 5, '1,3' is 1 and 3, '' is none."""
    assert parse_seeds("1-5") == [1, 2, 3, 4, 5]
    assert parse_seeds("1,3") == [1, 3]
    assert parse_seeds("") == []


def test_command_with_seeds_prints_median_spread_and_targets(tmp_path, capsys):
    """--seeds runs each seed and prints the spread table and lbh_adaptive's targets."""
    argv = [
        "--rates",
        "30",
        "--duration",
        "3",
        "--burst",
        "10",
        "--burst-at",
        "1",
        "--seeds",
        "1-2",
    ]
    argv += ["--creep-rate", "30", "--hetero-rate", "30", "--loaded-rate", "30"]
    assert main([*argv, "--out", str(tmp_path)]) == 0
    out = capsys.readouterr().out
    assert "over seeds 1-2: median [min-max]" in out
    assert "lbh_adaptive targets" in out
    assert f"{FIXED_DELTA_LABEL} targets" in out
    for scenario in ("steady-30", "burst-30", "creep-30", "hetero-30", "loaded-30"):
        assert f"scenario {scenario}" in out
    assert (tmp_path / "seeds.csv").read_text().startswith("seed,scenario,label")


def test_a_call_waits_off_the_cpu_before_its_work():
    """A call with a wait counts in flight and holds its memory, but takes no CPU until the
    wait is over; it finishes after the wait plus its work."""
    arrival = make_trace(np.random.default_rng(0), rate=50.0, duration_s=1.0)[0]
    node = SimNode("n", NodeModel(), wait_s=0.1)
    node.add(arrival, 0.0)
    assert (node.inflight, node.jobs_mb) == (1, arrival.kind.memory_mb)
    assert node.next_finish() == pytest.approx(0.1)
    assert node.finish(0.1) == []
    node.advance(0.1 + arrival.kind.work_s / 2)
    assert node.cpu_s == pytest.approx(arrival.kind.work_s / 2)
    assert node.next_finish() == pytest.approx(0.1 + arrival.kind.work_s)
    assert node.finish(node.next_finish()) == [arrival]
    assert node.inflight == 0


def test_a_killed_node_loses_its_waiting_calls_too():
    """Calls still in their wait are lost with the node, like the ones on the CPU."""
    trace = make_trace(np.random.default_rng(0), rate=50.0, duration_s=1.0)
    node = SimNode("n", NodeModel(), wait_s=0.1)
    node.add(trace[0], 0.0)
    assert node.kill(0.05) == [trace[0]]
    assert node.inflight == 0


def test_a_machine_wide_cpu_figure_is_the_nodes_mean_plus_the_host():
    """With machine_cpu every node reports the mean CPU plus host_cpu (at most 1); without
    it, its own plus host_cpu; memory stays each node's own."""
    raw = {0: (0.3, 0.2), 1: (0.5, 0.6)}
    machine = dataclasses.replace(LIGHT, machine_cpu=True, host_cpu=0.2)
    shared = reported_figures(raw, machine)
    assert [shared[i][0] for i in (0, 1)] == [0.3, 0.5]
    assert [shared[i][1] for i in (0, 1)] == pytest.approx([0.6, 0.6])
    own = reported_figures(raw, dataclasses.replace(LIGHT, host_cpu=0.5))
    assert [own[i][1] for i in (0, 1)] == pytest.approx([0.7, 1.0])
    assert reported_figures(raw, LIGHT) == raw


def test_lbh_adaptive_runs_with_and_without_the_learnt_delta():
    """The default runs hold lbh_adaptive with its learnt delta and with the fixed one."""
    by_label = {spec.label: spec for spec in DEFAULT_RUNS}
    assert by_label["lbh_adaptive"].adaptive is None
    fixed = by_label[FIXED_DELTA_LABEL].adaptive
    assert fixed is not None
    assert not fixed.learn_delta
