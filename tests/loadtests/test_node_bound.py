"""The node-bound scenario of `ethgw bench`: its cells in the profiles, the allotment given to
both systems' nodes (settings of the process and docker runtimes), the reports that mark it,
and `--find-allotment`'s choice."""

from __future__ import annotations

import dataclasses
import itertools
import math
from pathlib import Path

import pytest
from hypothesis import given
from hypothesis import strategies as st

from ethgw_wire.settings import ClusterSettings
from geth_cluster.cgroups import Allotment
from geth_cluster.layout import NodeSpec
from geth_cluster.runtimes.docker import DockerRuntime
from loadtests.allotment import (
    FIND_USERS,
    allotment_report,
    choose_cores,
    saturation_users,
)
from loadtests.bench import (
    FULL,
    NODE_BOUND,
    NODE_BOUND_ALLOTMENT,
    QUICK,
    allotment_of,
    build_parser,
    find_allotment_plan,
    plan_cells,
    profile_from,
)
from loadtests.report import (
    Cell,
    CellResult,
    cell_result,
    markdown_table,
    read_cells_csv,
    time_ratio_table,
    write_cells_csv,
    write_summary,
)
from loadtests.systems import allotment_env, cluster_fields


def _node_bound_groups(profile_argv: list[str] | None = None) -> list[tuple[str, int, list[Cell]]]:
    profile = (
        FULL if profile_argv is None else profile_from(build_parser().parse_args(profile_argv))
    )
    return [
        (s, n, cells) for s, n, scenario, cells in plan_cells(profile) if scenario == NODE_BOUND
    ]


def test_full_profile_runs_the_issues_node_bound_matrix() -> None:
    """The monolith and lbh, round_robin, least_inflight, p2c at 3, 5 and 8 nodes, 200-1200
    users, every cell confined to the published allotment."""
    groups = _node_bound_groups()
    shapes = {(system, nodes) for system, nodes, _ in groups}
    strategies = ("lbh", "round_robin", "least_inflight", "p2c")
    assert shapes == {("monolith", 1)} | {(s, n) for s in strategies for n in (3, 5, 8)}
    for _, _, cells in groups:
        assert [c.users for c in cells] == [200, 600, 1000, 1200]
        assert {(c.node_cores, c.node_memory_mb) for c in cells} == {
            (NODE_BOUND_ALLOTMENT.cores, NODE_BOUND_ALLOTMENT.memory_mb)
        }


def test_quick_profile_gains_one_node_bound_pair() -> None:
    """--quick runs the monolith against lbh with 3 nodes, node-bound."""
    groups = [(s, n, scenario) for s, n, scenario, _ in plan_cells(QUICK)]
    node_bound = [(s, n) for s, n, scenario in groups if scenario == NODE_BOUND]
    assert node_bound == [("monolith", 1), ("lbh", 3)]


def test_other_scenarios_run_unconfined() -> None:
    """Uniform and slowed-node cells carry no allotment: their nodes are not confined."""
    for _, _, scenario, cells in plan_cells(FULL):
        if scenario != NODE_BOUND:
            assert allotment_of(cells) is None


def test_allotment_options_reach_every_node_bound_cell() -> None:
    """--node-cores and --node-memory-mb are the allotment of the scenario's cells."""
    groups = _node_bound_groups(["--quick", "--node-cores", "0.2", "--node-memory-mb", "512"])
    assert {allotment_of(cells) for _, _, cells in groups} == {Allotment(0.2, 512.0)}


def test_node_bound_scenario_can_be_left_out_or_narrowed() -> None:
    """--node-bound '' runs none; --node-bound lbh runs lbh alone; a misspelt system stops."""
    assert _node_bound_groups(["--node-bound", ""]) == []
    assert {s for s, _, _ in _node_bound_groups(["--node-bound", "lbh"])} == {"lbh"}
    with pytest.raises(SystemExit, match="lbhh"):
        _node_bound_groups(["--node-bound", "lbhh"])


def test_a_non_positive_allotment_is_refused() -> None:
    """--node-cores 0 is a usage error, before anything starts."""
    with pytest.raises(SystemExit):
        build_parser().parse_args(["--node-cores", "0"])


def test_find_allotment_runs_the_monolith_at_each_candidate() -> None:
    """--find-allotment 0.1,0.05: the monolith, node-bound, at each allotment, ascending."""
    plan = find_allotment_plan(dataclasses.replace(FULL, users=FIND_USERS), [0.1, 0.05])
    assert [(s, n, scenario) for s, n, scenario, _ in plan] == [("monolith", 1, NODE_BOUND)] * 2
    assert [allotment_of(cells) for *_, cells in plan] == [
        Allotment(0.05, NODE_BOUND_ALLOTMENT.memory_mb),
        Allotment(0.1, NODE_BOUND_ALLOTMENT.memory_mb),
    ]
    assert [c.users for c in plan[0][3]] == list(FIND_USERS)


def test_a_confined_cell_is_labelled_with_its_cores() -> None:
    """Two allotments of one shape are two cells: the label names the cores."""
    assert Cell("monolith", 1, 600, 3000, NODE_BOUND, 0.05, 1024).label == (
        "node-bound-monolith-n1-u600-c0.05"
    )
    assert Cell("monolith", 1, 600, 3000).label == "uniform-monolith-n1-u600"


def test_allotment_becomes_the_cluster_settings_of_both_systems() -> None:
    """The variables given to `ethgw up` are the fields given to the monolith's cluster: the
    nodes' cores and memory, and the process runtime's cgroups."""
    env = allotment_env(Allotment(0.05, 768))
    settings = ClusterSettings(**cluster_fields(env))
    assert settings.cpu_cores_of("node-3") == 0.05
    assert settings.node_memory_budget_mb == 768
    assert settings.process_node_cgroup
    assert allotment_env(None) == {}


def test_docker_runtime_limits_a_node_to_the_allotment(tmp_path: Path) -> None:
    """In the docker runtime the same settings are the container's --cpus and --memory."""
    env = allotment_env(Allotment(0.25, 512))
    settings = ClusterSettings(state_dir=tmp_path, runtime="docker", **cluster_fields(env))
    runtime = DockerRuntime(settings, tmp_path / "geth")  # no engine is reached
    spec = NodeSpec("node-1", 1, False, tmp_path / "node-1", 30303, 8546, 8552)
    config = runtime._host_config(spec, [])
    assert config["nano_cpus"] == 250_000_000
    assert config["mem_limit"] == config["memswap_limit"] == 512 * 2**20


def _result(system: str, users: int, duration_s: float, cores: float = 0.05) -> CellResult:
    cell = Cell(system, 1 if system == "monolith" else 3, users, 4, NODE_BOUND, cores, 1024)
    # Four requests, the first started at 0 and the last ended at duration_s.
    ends = [0.001, duration_s / 3, 2 * duration_s / 3, duration_s]
    samples = [[end, "eth_balance", 1.0, True, ""] for end in ends]
    return cell_result(cell, {"samples": samples}, [], 0)


def test_cells_and_summary_mark_the_scenario_and_the_allotment(tmp_path: Path) -> None:
    """cells.csv keeps the allotment (read back by --resume); the table names it beside the
    scenario; the summary compares lbh's time to finish with the monolith's."""
    results = [_result("monolith", 600, 40.0), _result("lbh", 600, 20.0)]
    write_cells_csv(tmp_path / "cells.csv", results)
    assert [r.cell for r in read_cells_csv(tmp_path / "cells.csv")] == [r.cell for r in results]
    assert "| node-bound (0.05 core, 1024 MB) | lbh | 3 | 600 |" in markdown_table(results)
    write_summary(tmp_path / "summary.md", results, "# run", [])
    assert "| lbh | 3 | 600 | 20.0 | 40.0 | 0.50 |" in (tmp_path / "summary.md").read_text()


def test_ratio_needs_the_monolith_at_the_same_users() -> None:
    """Without the monolith's cell at those users there is no ratio."""
    table = time_ratio_table(
        [_result("monolith", 600, 40.0), _result("lbh", 1000, 20.0)], NODE_BOUND
    )
    assert "| lbh | 3 | 1000 | 20.0 | - | - |" in table


def test_saturation_is_where_more_users_stop_shortening_the_time() -> None:
    """200 -> 400 -> 600 halves the time each step; 800 no longer shortens it: saturated at 600."""
    assert saturation_users([(200, 120.0), (400, 60.0), (600, 30.0), (800, 29.0)]) == 600
    assert saturation_users([(200, 120.0), (400, 60.0), (600, 30.0), (800, 15.0)]) is None
    assert saturation_users([(200, 120.0), (400, math.inf)]) == 200


@given(
    st.lists(st.floats(min_value=1.0, max_value=1000.0), min_size=2, max_size=6),
    st.sampled_from([100, 200, 400]),
)
def test_saturation_point_is_one_of_the_measured_user_counts(times: list[float], step: int) -> None:
    """Whatever the curve, the saturation point is a measured user count below the largest,
    and past it the next step shortens the time by less than the threshold."""
    curve = [(step * (i + 1), t) for i, t in enumerate(times)]
    point = saturation_users(curve)
    if point is None:
        assert all(b < a * 0.9 for (_, a), (_, b) in itertools.pairwise(curve))
        return
    index = [u for u, _ in curve].index(point)
    assert index < len(curve) - 1
    assert not curve[index + 1][1] < curve[index][1] * 0.9


def test_chosen_allotment_saturates_nearest_600_users() -> None:
    """Of the candidates, the one whose monolith saturates nearest 600 users is chosen."""
    curves = {
        0.02: [(200, 100.0), (400, 99.0), (600, 99.0), (800, 99.0)],  # saturated at 200
        0.05: [(200, 100.0), (400, 50.0), (600, 34.0), (800, 33.0)],  # at 600
        0.2: [(200, 100.0), (400, 50.0), (600, 34.0), (800, 26.0)],  # not in range
    }
    assert choose_cores(curves) == 0.05
    assert choose_cores({0.2: curves[0.2]}) is None


def test_saturation_at_the_first_user_count_is_not_a_choice() -> None:
    """A row saturated at its first user count may saturate anywhere below it: not chosen,
    even when that first count is the one nearest 600."""
    curves = {
        0.1: [(600, 30.0), (800, 30.0), (1000, 30.0)],  # at or below 600
        0.3: [(600, 30.0), (800, 22.5), (1000, 22.0)],  # at 800
    }
    assert choose_cores(curves) == 0.3
    assert choose_cores({0.1: curves[0.1]}) is None


# Paced at 5 s, 3,000 requests: 40, 80, 120, 160, 200 req/s offered at 200-1000 users.
OFFERED_TIMES = {200: 75.0, 400: 37.5, 600: 25.0, 800: 18.75, 1000: 15.0}


def _paced(users: int, cores: float, capacity_rps: float, think_s: float = 5.0) -> CellResult:
    """The monolith's cell when its node serves at most `capacity_rps` (think 0: closed loop)."""
    cell = Cell("monolith", 1, users, 3000, NODE_BOUND, cores, 1024, think_s)
    offered = users / think_s if think_s else math.inf
    duration = 3000 / min(offered, capacity_rps)
    return CellResult(
        cell, True, 3000, duration, round(3000 / duration, 2), 10.0, 20.0, 30.0,
        0, 0, 0, 0, 5.0, 6.0, 100.0,
    )  # fmt: skip


def _report(capacities: dict[float, float], think_s: float = 5.0) -> str:
    return allotment_report(
        [_paced(u, c, rps, think_s) for c, rps in capacities.items() for u in OFFERED_TIMES]
    )


def test_paced_users_saturate_where_req_s_stops_growing_with_them() -> None:
    """Paced at 5 s, a node that serves 125 req/s keeps up to 600 users (120 offered) and
    not at 800 (160 offered): saturated at 600."""
    results = [_paced(u, 0.15, 125.0) for u in OFFERED_TIMES]
    curve = [(r.cell.users, r.duration_s) for r in results]
    assert saturation_users(curve) == 600


def test_report_shows_time_req_s_and_the_offered_rate() -> None:
    """allotment.md: per allotment and users, the time to finish and req/s, under headings
    that give what the paced users offered; the saturation point last."""
    report = _report({0.15: 125.0})
    assert "| node cores | 200 users (40 req/s offered) | 400 users (80 req/s offered) |" in report
    assert "| 0.15 | 75.0 s, 40 req/s | 37.5 s, 80 req/s | 25.0 s, 120 req/s |" in report
    assert report.rstrip().splitlines()[-3].endswith("| 24.0 s, 125 req/s | 600 users |")


def test_report_chooses_the_allotment_that_saturates_nearest_600_users() -> None:
    """Of 0.1 core (saturates at 400 users) and 0.15 (at 600), 0.15 is chosen, and said why."""
    report = _report({0.1: 85.0, 0.15: 125.0})
    assert "| 35.3 s, 85 req/s | 400 users |" in report
    assert (
        "Chosen: 0.15 core per node: the monolith saturates at 600 users, the nearest to 600 "
        "users of the allotments tried." in report
    )


def test_report_chooses_nothing_when_every_row_saturates_at_the_first_user_count() -> None:
    """Closed-loop users, as in the run of 15081d8: every allotment flat from 200 users; the
    report says so, and to pace the users, instead of choosing."""
    report = _report({0.05: 30.0, 0.15: 125.0, 0.3: 200.0}, think_s=0.0)
    assert "Chosen" not in report
    assert "| at or below 200 users (the first count) |" in report
    assert "No allotment chosen: every one saturates at the first user count" in report
    assert "pace them (--think-s)" in report


def test_report_chooses_nothing_when_paced_rows_all_saturate_at_once() -> None:
    """Paced users that already overload every allotment at 200 users: larger allotments
    or a longer think time are what to try."""
    report = _report({0.01: 10.0, 0.02: 20.0})
    assert "No allotment chosen: every one saturates at the first user count" in report
    assert "try larger allotments or a longer think time" in report


def test_report_chooses_nothing_when_none_saturates() -> None:
    """Every allotment keeps up with 1,000 paced users: none is chosen, smaller ones to try."""
    report = _report({0.3: 250.0, 0.5: 400.0})
    assert "| not by 1000 users |" in report
    assert "No allotment chosen: none saturates by 1000 users" in report


def test_report_chooses_nothing_between_a_first_count_and_a_beyond_the_range_row() -> None:
    """One allotment saturated from the first count, the other not by the last: the point
    lies between them, and the report says to try allotments there."""
    report = _report({0.01: 10.0, 0.5: 400.0})
    assert "none saturates inside 200-1000 users" in report
    assert "try allotments between them" in report
