"""The users' think time: the pacing rule, and how a cell's pacing reaches Locust and the
reports (the node-bound scenario's users are paced; the other scenarios' stay closed loop)."""

from __future__ import annotations

import dataclasses
import itertools
import json
import os
import subprocess
from pathlib import Path

import pytest
from hypothesis import given
from hypothesis import strategies as st

from loadtests.bench import (
    FULL,
    NODE_BOUND,
    NODE_BOUND_THINK_S,
    build_parser,
    find_allotment_plan,
    locust_command,
    plan_cells,
    profile_from,
)
from loadtests.pacing import Pacing, offered_rps
from loadtests.report import (
    Cell,
    CellResult,
    markdown_table,
    read_cells_csv,
    time_ratio_table,
    write_cells_csv,
)
from loadtests.systems import System
from service_kit.paths import REPO_ROOT

# -- the rule ------------------------------------------------------------------------


def test_a_paced_user_starts_a_task_every_period() -> None:
    """A 1 s task of a user paced at 5 s is followed by 4 s of waiting: a start every 5 s."""
    pacing = Pacing(5.0)
    pacing.start(100.0)
    assert pacing.wait_s(101.0) == 4.0
    assert pacing.wait_s(105.5) == 4.5  # the second task started at 105 and took 0.5 s


def test_a_task_longer_than_the_period_is_followed_at_once_without_catching_up() -> None:
    """After a 7 s task (period 5 s) the next starts at once, and the one after 5 s later."""
    pacing = Pacing(5.0)
    pacing.start(0.0)
    assert pacing.wait_s(7.0) == 0.0
    assert pacing.wait_s(8.0) == 4.0


def test_closed_loop_users_never_wait() -> None:
    """A think time of 0: no phase, no wait, the next task as soon as one ends."""
    pacing = Pacing(0.0)
    assert pacing.phase_s(0.99) == 0.0
    pacing.start(0.0)
    assert pacing.wait_s(3.0) == 0.0


def test_a_negative_think_time_is_refused() -> None:
    """A period below 0 is a mistake, not a closed loop."""
    with pytest.raises(ValueError, match="think time"):
        Pacing(-1.0)


@given(st.floats(min_value=0.0, max_value=1.0, exclude_max=True))
def test_first_tasks_spread_over_one_period(draw: float) -> None:
    """Whatever the draw, a user's first task starts within its first period."""
    assert 0.0 <= Pacing(5.0).phase_s(draw) < 5.0


@given(
    st.floats(min_value=0.1, max_value=10.0),
    st.lists(st.floats(min_value=0.0, max_value=20.0), min_size=1, max_size=20),
)
def test_task_starts_are_a_period_apart_unless_a_task_took_longer(
    period: float, durations: list[float]
) -> None:
    """Each next start is one period after the last, or the end of a task that took longer."""
    pacing = Pacing(period)
    starts = [0.0]
    pacing.start(0.0)
    for duration in durations:
        ended = starts[-1] + duration
        starts.append(ended + pacing.wait_s(ended))
    for (start, next_start), duration in zip(itertools.pairwise(starts), durations, strict=True):
        assert next_start == pytest.approx(max(start + period, start + duration))


def test_offered_rate_is_users_over_the_think_time() -> None:
    """600 users paced at 5 s offer 120 req/s; closed-loop users offer no fixed rate."""
    assert offered_rps(600, 5.0) == 120.0
    assert offered_rps(600, 0.0) is None


# -- the plumbing --------------------------------------------------------------------

SYSTEM = System("monolith", "http://127.0.0.1:9", "key", Path("/tmp/state"), ["node-1"])


def _think_option(command: list[str]) -> str | None:
    return command[command.index("--think-s") + 1] if "--think-s" in command else None


def test_a_paced_cell_gives_locust_its_think_time(tmp_path: Path) -> None:
    """A node-bound cell paced at 5 s runs Locust with --think-s 5."""
    cell = Cell("monolith", 1, 600, 3000, NODE_BOUND, 0.15, 1024, 5.0)
    command = locust_command(SYSTEM, cell, tmp_path, 900, tmp_path / "pool.jsonl")
    assert _think_option(command) == "5.0"
    assert command[command.index("-u") + 1] == "600"


def test_a_closed_loop_cell_runs_locust_without_think_time(tmp_path: Path) -> None:
    """A uniform cell's Locust gets no --think-s: its users stay closed loop."""
    command = locust_command(SYSTEM, Cell("lbh", 3, 600, 3000), tmp_path, 900, tmp_path / "p")
    assert _think_option(command) is None


def test_locust_run_by_the_bench_command_paces_at_the_cells_think_time(tmp_path: Path) -> None:
    """The locustfile accepts the bench's command line and takes its --think-s (a run of
    no users, 1 s long: the summary says which think time the users had)."""
    cell = Cell("monolith", 1, 0, 10, NODE_BOUND, 0.15, 1024, 2.5)
    command = locust_command(SYSTEM, cell, tmp_path, 1, tmp_path / "pool.jsonl")
    done = subprocess.run(
        command,
        cwd=REPO_ROOT,
        env={**os.environ, "PYTHONPATH": str(REPO_ROOT)},
        capture_output=True,
        text=True,
        timeout=120,
    )
    assert done.returncode == 0, done.stderr
    summary = json.loads((tmp_path / f"{cell.label}.locust.json").read_text())
    assert summary["think_s"] == 2.5


def test_node_bound_cells_are_paced_and_the_others_closed_loop() -> None:
    """The full profile paces its node-bound users at the declared think time, and only them."""
    for _, _, scenario, cells in plan_cells(FULL):
        expected = NODE_BOUND_THINK_S if scenario == NODE_BOUND else 0.0
        assert {cell.think_s for cell in cells} == {expected}


def test_think_time_option_paces_node_bound_and_find_allotment_cells() -> None:
    """--think-s 3 paces the node-bound cells and --find-allotment's at 3 s; 0 is closed loop."""
    profile = profile_from(build_parser().parse_args(["--think-s", "3"]))
    node_bound = [c for _, _, s, cells in plan_cells(profile) if s == NODE_BOUND for c in cells]
    found = [c for *_, cells in find_allotment_plan(profile, [0.15, 0.3]) for c in cells]
    assert {c.think_s for c in node_bound + found} == {3.0}
    closed = profile_from(build_parser().parse_args(["--think-s", "0"]))
    assert {c.think_s for *_, cells in find_allotment_plan(closed, [0.15]) for c in cells} == {0}


def test_a_negative_think_time_option_is_refused() -> None:
    """--think-s -1 is a usage error, before anything starts."""
    with pytest.raises(SystemExit):
        build_parser().parse_args(["--think-s", "-1"])


# -- the reports ---------------------------------------------------------------------


def _finished(cell: Cell, duration_s: float) -> CellResult:
    return CellResult(
        cell, True, cell.requests, duration_s, round(cell.requests / duration_s, 2),
        10.0, 20.0, 30.0, 0, 0, 0, 0, 5.0, 6.0, 100.0,
    )  # fmt: skip


PACED = Cell("monolith", 1, 600, 3000, NODE_BOUND, 0.15, 1024, 5.0)


def test_a_paced_cell_is_labelled_with_its_think_time() -> None:
    """The same allotment paced otherwise is another cell: the label names the think time."""
    assert PACED.label == "node-bound-monolith-n1-u600-c0.15-t5"
    assert dataclasses.replace(PACED, think_s=0.0).label == "node-bound-monolith-n1-u600-c0.15"


def test_cells_csv_keeps_the_think_time_and_the_summary_names_the_offered_rate(
    tmp_path: Path,
) -> None:
    """cells.csv has the think time per cell (read back by --resume); summary.md's scenario
    says how the users were paced and the rate they offered."""
    results = [_finished(PACED, 25.0)]
    write_cells_csv(tmp_path / "cells.csv", results)
    assert [r.cell for r in read_cells_csv(tmp_path / "cells.csv")] == [PACED]
    assert (tmp_path / "cells.csv").read_text().splitlines()[0].endswith(",think_s")
    assert (
        "| node-bound (0.15 core, 1024 MB; a task every 5 s per user: 120 req/s offered) "
        "| monolith |" in markdown_table(results)
    )


def test_a_cells_csv_of_before_the_think_time_reads_as_closed_loop(tmp_path: Path) -> None:
    """A row written without the think_s column is a closed-loop cell, as it was run."""
    closed = dataclasses.replace(PACED, think_s=0.0)
    path = tmp_path / "cells.csv"
    write_cells_csv(path, [_finished(closed, 25.0)])
    lines = path.read_text().splitlines()
    path.write_text("\n".join(line.rpartition(",")[0] for line in lines) + "\n")
    assert [r.cell for r in read_cells_csv(path)] == [closed]


def test_ratio_needs_the_monolith_paced_the_same() -> None:
    """An ethgw cell is compared with the monolith's cell of the same users and pacing only."""
    lbh = dataclasses.replace(PACED, system="lbh", nodes=3)
    closed_monolith = dataclasses.replace(PACED, think_s=0.0)
    table = time_ratio_table([_finished(closed_monolith, 40.0), _finished(lbh, 20.0)], NODE_BOUND)
    assert "| lbh | 3 | 600 | 20.0 | - | - |" in table
    paired = time_ratio_table([_finished(PACED, 40.0), _finished(lbh, 20.0)], NODE_BOUND)
    assert "| lbh | 3 | 600 | 20.0 | 40.0 | 0.50 |" in paired
