"""Integer fields: what JSON Schema calls an integer is one, and nothing loses digits."""

from __future__ import annotations

import pytest
from pydantic import TypeAdapter, ValidationError

from ethgw_wire.fields import PositiveUint256, Uint256

UINT256 = TypeAdapter(Uint256)


def test_a_number_with_a_zero_fraction_is_an_integer() -> None:
    """5.0 is the integer 5 (JSON Schema: an integer is a number with a zero fraction)."""
    assert UINT256.validate_python(5.0) == 5
    assert type(UINT256.validate_python(5.0)) is int


@pytest.mark.parametrize("value", [1.5, 1e60, float(2**53 + 2), True])
def test_a_fraction_a_float_past_2_53_and_a_boolean_are_refused(value: object) -> None:
    """1.5, a float past 2**53 (its digits may be lost) and true are no integers."""
    with pytest.raises(ValidationError, match="must be an integer"):
        UINT256.validate_python(value)


def test_digits_past_2_53_keep_every_digit() -> None:
    """2**256 - 1, sent as an integer or as its digits, arrives whole."""
    top = 2**256 - 1
    assert UINT256.validate_python(top) == top
    assert UINT256.validate_python(str(top)) == top


def test_the_positive_bound_is_enforced_after_the_conversion() -> None:
    """0.0 is refused by a positive amount, as 0 is."""
    with pytest.raises(ValidationError, match="greater than 0"):
        TypeAdapter(PositiveUint256).validate_python(0.0)
