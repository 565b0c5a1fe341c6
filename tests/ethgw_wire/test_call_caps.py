"""What one read call may ask of a node: eth_getLogs' block range and the gas of a call,
checked before any task (ethgw_wire.rpc_params.capped_params)."""

from __future__ import annotations

from typing import Any

import pytest
from hypothesis import given
from hypothesis import strategies as st

from ethgw_wire.rpc_params import CallCaps, InvalidRpcParamsError, capped_params

CAPS = CallCaps(logs_max_blocks=100, call_max_gas=1_000_000)


def _logs(head: int | None = 500, **bounds: Any) -> list[Any]:
    return _filter(bounds, head)


def _filter(bounds: dict[str, Any], head: int | None = 500) -> list[Any]:
    return capped_params("eth_getLogs", [bounds], CAPS, head)


@pytest.mark.parametrize(
    ("bounds", "reason"),
    [
        ({"fromBlock": "0x0", "toBlock": "0x64"}, "spans 101 blocks (0 to 100)"),
        ({"fromBlock": "earliest", "toBlock": "latest"}, "spans 501 blocks (0 to 500)"),
        ({"fromBlock": "earliest"}, "spans 501 blocks (0 to 500)"),
        ({"fromBlock": "0x1", "toBlock": "pending"}, "spans 500 blocks (1 to 500)"),
    ],
)
def test_a_log_range_over_the_cap_is_refused_naming_the_filter(
    bounds: dict[str, str], reason: str
) -> None:
    """A range wider than logs_max_blocks: InvalidRpcParamsError naming params[0] (filter),
    the span and the cap."""
    with pytest.raises(InvalidRpcParamsError) as refused:
        _filter(bounds)
    assert str(refused.value).startswith("params[0] (filter) ")
    assert reason in str(refused.value)
    assert "the cap is 100 blocks per eth_getLogs" in str(refused.value)


@pytest.mark.parametrize(
    "bounds",
    [
        {},
        {"fromBlock": "latest", "toBlock": "latest"},
        {"fromBlock": "0x0", "toBlock": "0x63"},
        {"fromBlock": hex(401), "toBlock": "latest"},
        {"blockHash": "0x" + "ab" * 32},
    ],
)
def test_a_log_range_within_the_cap_passes_unchanged(bounds: dict[str, str]) -> None:
    """Up to logs_max_blocks blocks (the head alone, a block hash) pass as they are."""
    assert _filter(bounds) == [bounds]


def test_a_range_from_a_number_to_the_head_is_refused_while_the_head_is_unknown() -> None:
    """Without a node report of the head, a range ending at a tag cannot be measured:
    refused, saying to give numbers; the head alone still passes."""
    with pytest.raises(InvalidRpcParamsError, match="head is not known"):
        _logs(head=None, fromBlock="0x0")
    assert _logs(head=None, toBlock="latest") == [{"toBlock": "latest"}]


def test_a_filter_bound_that_is_no_block_is_refused_naming_it() -> None:
    """A fromBlock of the wrong shape is -32602 naming fromBlock, not a node's error."""
    with pytest.raises(InvalidRpcParamsError, match=r"filter\) fromBlock must be"):
        _logs(fromBlock={"x": 1})


@given(first=st.integers(0, 10_000), width=st.integers(1, 300))
def test_the_range_rule_is_the_span_against_the_cap(first: int, width: int) -> None:
    """Numeric bounds pass exactly when they span at most logs_max_blocks blocks."""
    bounds = {"fromBlock": hex(first), "toBlock": hex(first + width - 1)}
    if width <= CAPS.logs_max_blocks:
        assert _filter(bounds) == [bounds]
    else:
        with pytest.raises(InvalidRpcParamsError):
            _filter(bounds)


@pytest.mark.parametrize("method", ["eth_call", "eth_estimateGas"])
def test_a_call_over_the_gas_cap_is_refused_naming_the_transaction(method: str) -> None:
    """gas above call_max_gas: refused naming params[0] (transaction), the gas and the cap."""
    call = [{"to": "0x" + "11" * 20, "gas": hex(1_000_001)}, "latest"]
    with pytest.raises(InvalidRpcParamsError) as refused:
        capped_params(method, call, CAPS, 5)
    assert str(refused.value) == (
        "params[0] (transaction) gas 1000001 exceeds the cap of 1000000 gas per call"
    )


def test_a_call_without_gas_gets_the_cap() -> None:
    """A call that names no gas is given call_max_gas (a node would give its own, larger
    cap); the other params are kept."""
    override = {"0x" + "11" * 20: {"code": "0x00"}}
    params = capped_params("eth_call", [{"to": "0x" + "11" * 20}, "latest", override], CAPS, 5)
    assert params == [{"to": "0x" + "11" * 20, "gas": hex(1_000_000)}, "latest", override]


def test_a_call_within_the_gas_cap_passes_unchanged() -> None:
    """gas at or under the cap is the caller's own."""
    call = [{"to": "0x" + "11" * 20, "gas": hex(1_000_000)}]
    assert capped_params("eth_call", call, CAPS, 5) == call


def test_a_gas_that_is_no_number_is_refused() -> None:
    """gas must be a hex quantity, as the node would require."""
    with pytest.raises(InvalidRpcParamsError, match=r"transaction\) gas must be"):
        capped_params("eth_call", [{"gas": 5}], CAPS, 5)
