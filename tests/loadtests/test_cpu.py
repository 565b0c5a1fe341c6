"""CPU time per request, by process kind: the ledger on real processes, and the report."""

from __future__ import annotations

import subprocess
import sys
import time
from collections.abc import Iterator
from pathlib import Path
from types import SimpleNamespace
from typing import Any, cast

import psutil
import pytest

from loadtests.cpu import CPU_KINDS, CpuLedger, kind_of, ms_per_request
from loadtests.report import (
    Cell,
    CellResult,
    cell_result,
    cpu_table,
    read_cells_csv,
    write_cells_csv,
)

BURN = "import time\nend = time.process_time() + {s}\nwhile time.process_time() < end: pass\n"


@pytest.fixture
def idle_child() -> Iterator[subprocess.Popen[bytes]]:
    """A child process that waits on its standard input, then burns the CPU seconds it reads."""
    code = "import sys, time\ns = float(sys.stdin.readline())\n" + BURN.format(s="s")
    child = subprocess.Popen([sys.executable, "-c", code], stdin=subprocess.PIPE)
    yield child
    child.kill()
    child.communicate()  # also closes its standard input


def test_series_names_map_to_the_reported_kinds() -> None:
    """Instances, providers and nodes group by kind; the rest keep their own name."""
    assert [kind_of(s) for s in ("read-2", "write-1", "provider-3", "node-4", "sealer")] == [
        "services",
        "services",
        "provider",
        "nodes",
        "nodes",
    ]
    assert [kind_of(s) for s in ("gateway", "kafka", "monolith")] == [
        "gateway",
        "kafka",
        "monolith",
    ]


def test_the_ledger_counts_only_the_cpu_spent_inside_the_window(
    idle_child: subprocess.Popen[bytes],
) -> None:
    """CPU a process spent before start() is not counted; what it burns after is."""
    process = psutil.Process(idle_child.pid)
    time.sleep(0.3)  # its interpreter's start-up happens before the window
    ledger = CpuLedger()
    ledger.start({"gateway": process})
    assert idle_child.stdin is not None
    idle_child.stdin.write(b"0.4\n")
    idle_child.stdin.flush()
    deadline = time.monotonic() + 10
    while ledger.seconds_by_kind()["gateway"] < 0.4 and time.monotonic() < deadline:
        time.sleep(0.05)
        ledger.observe({"gateway": process})
    spent = ledger.seconds_by_kind()["gateway"]
    assert 0.39 <= spent < 0.7


def test_a_process_born_inside_the_window_counts_from_zero() -> None:
    """A node restarted during a cell is charged all the CPU of its new process."""
    ledger = CpuLedger()
    ledger.start({})
    child = subprocess.Popen([sys.executable, "-c", BURN.format(s=0.3) + "time.sleep(5)"])
    try:
        process = psutil.Process(child.pid)
        deadline = time.monotonic() + 10
        while ledger.seconds_by_kind()["nodes"] < 0.29 and time.monotonic() < deadline:
            time.sleep(0.05)
            ledger.observe({"node-1": process})
        assert ledger.seconds_by_kind()["nodes"] >= 0.29
    finally:
        child.kill()
        child.wait()


class _Burning:
    """A process whose CPU seconds the test sets."""

    def __init__(self, pid: int) -> None:
        self.pid = pid
        self.spent = 0.0

    def cpu_times(self) -> Any:
        return SimpleNamespace(user=self.spent, system=0.0)


def test_a_window_inside_the_readings_is_read_off_them_linearly() -> None:
    """CPU from wall-clock 5 to 15, readings at 0, 10 and 20 (0, 5, 15 s): 2.5 to 10 s."""
    burning = _Burning(pid=1)
    processes = {"gateway": cast(psutil.Process, burning)}
    ledger = CpuLedger()
    ledger.start(processes, at=0.0)
    for at, spent in ((10.0, 5.0), (20.0, 15.0)):
        burning.spent = spent
        ledger.observe(processes, at=at)
    assert ledger.seconds_between(5.0, 15.0)["gateway"] == pytest.approx(7.5)


def test_the_set_up_before_the_counted_window_is_not_charged() -> None:
    """A cell's CPU is that of its counted requests: what the set-up burnt before is left out."""
    burning = _Burning(pid=1)
    processes = {"provider": cast(psutil.Process, burning)}
    ledger = CpuLedger()
    ledger.start(processes, at=0.0)
    burning.spent = 30.0  # the users' set-up: account creations
    ledger.observe(processes, at=60.0)
    burning.spent = 32.0
    ledger.observe(processes, at=80.0)
    assert ledger.seconds_between(60.0, 80.0)["provider"] == pytest.approx(2.0)


def test_ms_per_request_divides_each_kind_and_sums_a_total() -> None:
    """Seconds by kind over N requests become milliseconds per request, plus their total."""
    per = ms_per_request({"gateway": 1.0, "nodes": 0.5}, 500)
    assert per["gateway"] == 2.0
    assert per["nodes"] == 1.0
    assert per["total"] == 3.0


def _result(system: str, total_s: float) -> CellResult:
    cell = Cell(system, 3, 200, 10)
    samples = [[float(i), "read", 5.0, True, ""] for i in range(10)]
    seconds = {kind: 0.0 for kind in CPU_KINDS} | {"nodes": total_s}
    return cell_result(cell, {"samples": samples}, [], 0, seconds)


def test_a_cells_cpu_figures_survive_the_csv(tmp_path: Path) -> None:
    """cells.csv keeps the CPU ms per request of each kind, read back as they were written."""
    result = _result("lbh", 0.05)
    write_cells_csv(tmp_path / "cells.csv", [result])
    assert read_cells_csv(tmp_path / "cells.csv")[0].cpu_ms == result.cpu_ms
    assert result.cpu_ms["total"] == 5.0


def test_the_cpu_table_compares_each_cell_with_the_monolith_at_its_users() -> None:
    """The ratio column is a cell's total CPU per request over the monolith's."""
    table = cpu_table([_result("monolith", 0.01), _result("lbh", 0.03)])
    assert table.splitlines()[-1].endswith("| 3.00 |")
