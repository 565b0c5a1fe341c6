"""The slowed-node section of the bench's summary: each strategy's p99 against the
baselines', over all requests and over the requests the node choice serves."""

from __future__ import annotations

from pathlib import Path
from typing import Any

from loadtests.mix import MIX, PLATFORM_QUEUED
from loadtests.report import (
    Cell,
    CellResult,
    cell_result,
    read_cells_csv,
    slowed_node_table,
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
    table = slowed_node_table(results)
    assert "| lbh_adaptive | 3 | 600 | 20000 | 0.50 | 0.80 | 100 | 0.25 | 0.50 |" in table


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
