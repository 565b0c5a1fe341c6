"""Which systems and strategies `ethgw bench` accepts: every strategy `ethgw up` runs."""

from __future__ import annotations

import pytest

from loadtests.bench import FULL, build_parser, plan_cells, profile_from


def _profile(*argv: str) -> tuple[tuple[str, ...], tuple[str, ...]]:
    profile = profile_from(build_parser().parse_args(list(argv)))
    return profile.systems, profile.slow_node_strategies


def test_lbh_adaptive_is_a_system_of_the_uniform_matrix() -> None:
    """--systems lbh_adaptive runs ethgw with lbh_adaptive."""
    systems, _ = _profile("--systems", "monolith,lbh_adaptive")
    assert systems == ("monolith", "lbh_adaptive")


def test_lbh_adaptive_runs_in_the_slowed_node_cells() -> None:
    """--slow-node lbh_adaptive puts lbh_adaptive in the heterogeneous scenario."""
    _, slow = _profile("--slow-node", "lbh_adaptive,p2c")
    assert slow == ("lbh_adaptive", "p2c")


def test_an_unknown_slow_node_strategy_is_refused() -> None:
    """A misspelt strategy stops the bench before any system starts."""
    with pytest.raises(SystemExit, match="lbh_adaptve"):
        _profile("--slow-node", "lbh_adaptve")


def test_the_full_matrix_keeps_its_systems() -> None:
    """Accepting more names does not grow the full profile's matrix."""
    uniform = {system for system, _, scenario, _ in plan_cells(FULL) if scenario == "uniform"}
    assert uniform == {"monolith", "lbh", "round_robin", "least_inflight", "p2c"}
