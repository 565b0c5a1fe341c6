"""The micro-benchmark's hop-by-hop timing of a read, on the real pipeline."""

from __future__ import annotations

import math

import pytest

from ethgw_wire.settings import KafkaSettings
from loadtests.micro import HOPS, read_hops

pytestmark = [pytest.mark.slow, pytest.mark.usefixtures("provider")]


async def test_every_hop_of_a_read_takes_time_and_they_add_up() -> None:
    """Each hop of a read is positive, and their means add up to the whole."""
    hops = await read_hops(KafkaSettings(), requests=20, warmup=3)
    assert [hop.name for hop in hops] == list(HOPS)
    assert all(hop.p50_ms > 0 for hop in hops), hops
    *parts, whole = hops
    assert math.isclose(sum(hop.mean_ms for hop in parts), whole.mean_ms, rel_tol=1e-9)
