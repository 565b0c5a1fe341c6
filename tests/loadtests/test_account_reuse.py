"""Account reuse across a group's cells and `ethgw bench --resume`, as pure logic:
the pool file, the order of a group's cells, and which cells a resumed run skips."""

from __future__ import annotations

import dataclasses
from pathlib import Path

import pytest

from loadtests.bench import FULL, groups_to_run, main, merged, plan_cells
from loadtests.pool import AccountPool, PooledAccount, read_pool
from loadtests.report import (
    Cell,
    CellResult,
    cell_result,
    read_cells_csv,
    read_resources_csv,
    read_zones_csv,
    write_cells_csv,
    write_resources_csv,
    write_zones_csv,
)
from loadtests.sampler import ResourceSample, ZoneSample


def _account(n: int, unlocked_until: float = 1e10) -> PooledAccount:
    return PooledAccount(f"0x{n:040x}", f"0x{n:064x}", unlocked_until)


def test_a_missing_pool_lends_nothing(tmp_path: Path) -> None:
    """The first cell of a group has no pool file: every user creates its account."""
    assert AccountPool(tmp_path / "pool.jsonl").take() is None


def test_each_pooled_account_is_lent_once_in_order(tmp_path: Path) -> None:
    """Users take the accounts in the order they were made, each once, then get None."""
    path = tmp_path / "pool.jsonl"
    writer = AccountPool(path)
    for n in (1, 2):
        writer.add(_account(n))
    pool = AccountPool(path)
    assert [pool.take(), pool.take(), pool.take()] == [_account(1), _account(2), None]


def test_accounts_added_in_a_cell_are_not_lent_in_it(tmp_path: Path) -> None:
    """An account a user created is its own for the cell; the next cell may lend it."""
    path = tmp_path / "pool.jsonl"
    pool = AccountPool(path)
    pool.add(_account(1))
    assert pool.take() is None
    assert AccountPool(path).take() == _account(1)


def test_a_renewed_unlock_replaces_the_entry_in_its_place(tmp_path: Path) -> None:
    """A later line for an address (its unlock renewed) wins, keeping the first order."""
    path = tmp_path / "pool.jsonl"
    pool = AccountPool(path)
    for account in (_account(1, 100.0), _account(2, 100.0), _account(1, 500.0)):
        pool.add(account)
    assert read_pool(path) == [_account(1, 500.0), _account(2, 100.0)]


def test_a_torn_line_is_skipped(tmp_path: Path) -> None:
    """A cell killed while appending leaves half a line: the rest of the pool still reads."""
    path = tmp_path / "pool.jsonl"
    AccountPool(path).add(_account(1))
    with path.open("a") as out:
        out.write('{"address": "0x12", "tx_h')
    assert read_pool(path) == [_account(1)]


def test_an_unlock_that_may_end_within_the_cell_is_renewed() -> None:
    """A pooled account is used as it is only if its unlock outlasts the whole cell."""
    account = _account(1, unlocked_until=1000.0)
    assert account.unlocked_for(900.0, now=100.0)
    assert not account.unlocked_for(900.0, now=101.0)


def test_a_groups_cells_run_in_ascending_users() -> None:
    """Each cell of a group has at least the users of the one before: it creates only more."""
    profile = dataclasses.replace(FULL, users=(1000, 200, 600))
    for _, _, _, cells in plan_cells(profile):
        users = [cell.users for cell in cells]
        assert users == sorted(users)


def _result(cell: Cell, done: int) -> CellResult:
    samples = [[100.0 + i, "eth_balance", 5.0, True, ""] for i in range(done)]
    summary = {"samples": samples, "accounts_created": 3, "accounts_reused": 7}
    return cell_result(cell, summary, [], 0)


def test_resume_skips_finished_cells_and_groups_left_empty() -> None:
    """A finished cell is not run again; a group with nothing left is not started."""
    groups = plan_cells(FULL)
    finished = {cell for _, _, _, cells in groups[:2] for cell in cells}
    finished.add(groups[2][3][0])
    remaining = groups_to_run(groups, finished)
    assert len(remaining) == len(groups) - 2
    assert remaining[0][3] == groups[2][3][1:]


def test_a_rerun_cell_replaces_its_row_and_new_cells_follow() -> None:
    """The merged rows: earlier ones in order, an unfinished one replaced by its new run."""
    a, b, c = (Cell("lbh", 3, users, 5) for users in (10, 20, 30))
    earlier = [_result(a, 5), _result(b, 2)]
    new = [_result(b, 5), _result(c, 5)]
    rows = merged(earlier, new)
    assert [(r.cell, r.finished) for r in rows] == [(a, True), (b, True), (c, True)]


def test_cells_csv_reads_back_as_written(tmp_path: Path) -> None:
    """What a resumed run reads of cells.csv is the results the earlier run wrote."""
    result = _result(Cell("round_robin", 5, 20, 10, "slow-node"), 4)
    result.failure_reasons = {"send_transaction HTTP 0 Error: a; b": 2, "eth_balance HTTP 503": 1}
    write_cells_csv(tmp_path / "cells.csv", [result])
    assert read_cells_csv(tmp_path / "cells.csv") == [result]


def test_an_older_cells_csv_reads_with_defaults(tmp_path: Path) -> None:
    """A cells.csv written before the account columns existed still resumes."""
    path = tmp_path / "cells.csv"
    write_cells_csv(path, [_result(Cell("lbh", 3, 10, 5), 5)])
    header, row = (line.split(",") for line in path.read_text().splitlines())
    kept = [k for k, name in enumerate(header) if not name.startswith("accounts_")]
    older = ([header[k] for k in kept], [row[k] for k in kept])
    path.write_text("".join(",".join(line) + "\n" for line in older))
    (read,) = read_cells_csv(path)
    assert (read.finished, read.accounts_created, read.accounts_reused) == (True, 0, 0)


def test_samples_csvs_read_back_by_cell(tmp_path: Path) -> None:
    """resources.csv and zones.csv of the kept cells come back for the charts."""
    resources = {"c1": [ResourceSample(1.0, "node-1", "node", 12.5, 80.0)]}
    zones = {"c1": [ZoneSample(1.0, "node-1", "II", 0.5, 0.25, "up", 0.125)]}
    write_resources_csv(tmp_path / "resources.csv", resources)
    write_zones_csv(tmp_path / "zones.csv", zones)
    assert read_resources_csv(tmp_path / "resources.csv") == resources
    assert read_zones_csv(tmp_path / "zones.csv") == zones


def test_resume_without_out_is_refused(capsys: pytest.CaptureFixture[str]) -> None:
    """--resume names no folder by itself: it needs the --out of the run to go on with."""
    with pytest.raises(SystemExit) as stopped:
        main(["--resume"])
    assert stopped.value.code == 2
    assert "--resume needs --out" in capsys.readouterr().err


def test_a_resume_with_everything_finished_runs_nothing(tmp_path: Path) -> None:
    """Every cell already finished: no system starts, and the summary is made from the rows."""
    cells = [Cell("lbh", 3, users, 5) for users in (10, 20)]
    write_cells_csv(tmp_path / "cells.csv", [_result(cell, 5) for cell in cells])
    argv = ["--systems", "lbh", "--nodes", "3", "--users", "10,20", "--requests", "5"]
    assert (
        main([*argv, "--slow-node", "", "--node-bound", "", "--out", str(tmp_path), "--resume"])
        == 0
    )
    summary = (tmp_path / "summary.md").read_text()
    assert "| uniform | lbh | 3 | 20 | 5 |" in summary
    assert len(read_cells_csv(tmp_path / "cells.csv")) == 2
