"""The floor under which a contract call's gas estimate means "no code ran"."""

from __future__ import annotations

from provider.transactions import PLAIN_TRANSFER_GAS, intrinsic_gas


def test_empty_calldata_costs_a_plain_transfer() -> None:
    """No calldata: the base fee alone."""
    assert intrinsic_gas("0x") == PLAIN_TRANSFER_GAS


def test_zero_and_nonzero_calldata_bytes_are_priced_per_eip_2028() -> None:
    """4 gas a zero byte, 16 a non-zero one."""
    assert intrinsic_gas("0x00ff00ab") == PLAIN_TRANSFER_GAS + 2 * 4 + 2 * 16


def test_a_token_call_is_priced_by_its_selector_and_argument_words() -> None:
    """mint(address, 10): 25 non-zero bytes and 43 zero bytes of calldata."""
    selector = "40c10f19"
    address = "00" * 12 + "ab" * 20
    amount = "00" * 31 + "0a"
    assert intrinsic_gas("0x" + selector + address + amount) == 21000 + 16 * 25 + 4 * 43
