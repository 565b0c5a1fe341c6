"""The slowed-node section of the bench's summary: each strategy's p99 against the
baselines', over all requests and over the requests the node choice serves."""

from __future__ import annotations

from pathlib import Path
from typing import Any

from loadtests.mix import MIX, PLATFORM_QUEUED
from loadtests.report import (
    Cell,
    CellResult,
    baseline_p99_table,
    cell_result,
    read_cells_csv,
    write_cells_csv,
)


def _summary(latencies_ms: dict[str, list[float]]) -> dict[str, Any]:
    samples = [
        [1000.0 + i, name, latency, True, ""]
        for name, latencies in latencies_ms.items()
        for i, latency in enumerate(latencies)
    ]
    return {"target": len(samples), "setup_requests": 0, "setup_failures": 0, "samples": samples}


def _slowed(system: str, reads_ms: float, deploys_ms: float) -> CellResult:
    latencies = {"eth_balance": [reads_ms] * 99, "deploy_contract": [deploys_ms] * 99}
    return cell_result(Cell(system, 3, 600, 198, "slow-node"), _summary(latencies), [], 0)


def test_every_platform_queued_request_is_one_of_the_mix() -> None:
    """PLATFORM_QUEUED names requests of table 5.1, not made-up ones."""
    assert {entry.name for entry in MIX} >= PLATFORM_QUEUED


def test_the_node_served_p99_leaves_out_the_platform_queued_requests() -> None:
    """Deploys queued on the admin account do not count in the node-served p99."""
    result = _slowed("lbh_adaptive", reads_ms=100.0, deploys_ms=20_000.0)
    assert result.p99_ms == 20_000.0
    assert result.p99_node_served_ms == 100.0


def test_the_table_divides_by_round_robins_and_by_the_best_baselines_p99() -> None:
    """Ratios are to round robin's p99 and to the lowest of the three baselines'."""
    results = [
        _slowed("lbh_adaptive", reads_ms=100.0, deploys_ms=20_000.0),
        _slowed("round_robin", reads_ms=400.0, deploys_ms=40_000.0),
        _slowed("least_inflight", reads_ms=200.0, deploys_ms=25_000.0),
        _slowed("p2c", reads_ms=250.0, deploys_ms=30_000.0),
    ]
    table = baseline_p99_table(results, "slow-node")
    all_requests, node_served, with_left = (
        "20000 | 0.50 | 0.80",
        "100 | 0.25 | 0.50",
        "20000 | 0.50 | 0.80",
    )
    row = f"| lbh_adaptive | 3 | 600 | {all_requests} | {node_served} | {with_left} |"
    assert row in table


def test_the_requests_left_in_flight_count_at_their_age_in_their_own_p99() -> None:
    """Five requests left at 60 s lift the p99 over 199 counted ones to 60 s, and only it."""
    summary = _summary({"eth_balance": [100.0] * 199})
    summary["left_ages_s"] = [60.0] * 5
    result = cell_result(Cell("lbh_adaptive", 3, 600, 199, "node-bound"), summary, [], 0)
    assert result.p99_ms == 100.0
    assert result.p99_with_left_ms == 60_000.0
    assert (result.left_in_flight, result.oldest_left_s) == (5, 60.0)


def test_with_nothing_left_in_flight_both_p99s_agree() -> None:
    """A cell that left no request under way has one p99, whichever way it is counted."""
    result = _slowed("p2c", reads_ms=250.0, deploys_ms=30_000.0)
    assert result.p99_with_left_ms == result.p99_ms


def test_an_older_cells_file_reads_back_without_the_node_served_p99(tmp_path: Path) -> None:
    """A cells.csv written before the column existed still loads, its figure unknown."""
    path = tmp_path / "cells.csv"
    write_cells_csv(path, [_slowed("p2c", reads_ms=250.0, deploys_ms=30_000.0)])
    header, *rows = path.read_text().splitlines()
    column = header.split(",").index("p99_node_served_ms")
    cut = [
        ",".join(c for i, c in enumerate(line.split(",")) if i != column)
        for line in [header, *rows]
    ]
    path.write_text("\n".join(cut) + "\n")
    (result,) = read_cells_csv(path)
    assert result.p99_ms == 30_000.0
    assert result.p99_node_served_ms != result.p99_node_served_ms  # nan: not measured


def test_node_bound_cells_are_compared_only_under_the_same_allotment() -> None:
    """A baseline given another allotment is no peer: with none left the ratios are blank."""
    latencies = {"eth_balance": [100.0] * 99}
    adaptive = cell_result(
        Cell("lbh_adaptive", 3, 600, 99, "node-bound", node_cores=0.15), _summary(latencies), [], 0
    )
    elsewhere = cell_result(
        Cell("p2c", 3, 600, 99, "node-bound", node_cores=0.3), _summary(latencies), [], 0
    )
    table = baseline_p99_table([adaptive, elsewhere], "node-bound")
    assert "| lbh_adaptive | 3 | 600 | 100 | - | - |" in table
