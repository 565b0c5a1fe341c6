"""The slowed-node scenario's options: how hard its node is slowed."""

from __future__ import annotations

import pytest

from loadtests.bench import SLOW_NODE_CORES, build_parser, profile_from


def test_the_slowed_node_keeps_its_default_cap() -> None:
    """Without --slow-node-cores, the slowed node is capped at SLOW_NODE_CORES."""
    assert profile_from(build_parser().parse_args([])).slow_node_cores == SLOW_NODE_CORES


def test_slow_node_cores_sets_the_cap() -> None:
    """--slow-node-cores 0.08 caps the slowed node at 0.08 core."""
    args = build_parser().parse_args(["--slow-node-cores", "0.08"])
    assert profile_from(args).slow_node_cores == 0.08


def test_a_non_positive_cap_is_refused() -> None:
    """--slow-node-cores 0 is a usage error, before anything starts."""
    with pytest.raises(SystemExit):
        build_parser().parse_args(["--slow-node-cores", "0"])
