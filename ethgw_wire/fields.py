"""Validated field types of the API and the task wire format.

Each failure message says what the value must be, so the error the client sees
names the field (pydantic adds its location) and the reason.
"""

from __future__ import annotations

import re
from typing import Annotated, Any

from eth_utils.address import is_checksum_address, to_checksum_address
from pydantic import AfterValidator, BeforeValidator, Field

UINT256_MAX = 2**256 - 1
MAX_BYTECODE_BYTES = 49_152  # EIP-3860's init-code limit, also sane for London
_HEX_ADDRESS = re.compile(r"^0x[0-9a-fA-F]{40}$")
_HASH32 = re.compile(r"^0x[0-9a-fA-F]{64}$")
_HEX_DATA = re.compile(r"^0x(?:[0-9a-fA-F]{2})*$")


def _checksummed(value: str) -> str:
    """Accept an EIP-55 address, or one in a single case; reject a wrong checksum."""
    if not isinstance(value, str) or not _HEX_ADDRESS.match(value):
        raise ValueError("must be a 0x-prefixed hex address of 20 bytes")
    body = value[2:]
    single_case = body == body.lower() or body == body.upper()
    if not single_case and not is_checksum_address(value):
        raise ValueError("has a wrong EIP-55 checksum")
    return str(to_checksum_address(value))


def _hash32(value: str) -> str:
    if not isinstance(value, str) or not _HASH32.match(value):
        raise ValueError("must be a 0x-prefixed hex string of 32 bytes")
    return value.lower()


def _hex_data(value: str) -> str:
    if not isinstance(value, str) or not _HEX_DATA.match(value):
        raise ValueError("must be 0x-prefixed hex with an even number of digits")
    return value.lower()


def _bytecode(value: str) -> str:
    value = _hex_data(value)
    size = (len(value) - 2) // 2
    if size == 0:
        raise ValueError("must not be empty")
    if size > MAX_BYTECODE_BYTES:
        raise ValueError(f"is {size} bytes; the limit is {MAX_BYTECODE_BYTES}")
    return value


FLOAT_EXACT_INTEGERS = 2**53


def _strict_int(value: object) -> object:
    """Integers, or strings of decimal digits (JSON clients lose precision past 2**53). A
    number with a zero fraction (5.0) is an integer, as JSON Schema says, while a float
    holds it exactly; past 2**53 it may have lost digits, so it is refused."""
    if isinstance(value, bool):
        raise ValueError("must be an integer, not a boolean")
    if isinstance(value, float):
        if value.is_integer() and abs(value) <= FLOAT_EXACT_INTEGERS:
            return int(value)
        raise ValueError("must be an integer (past 2**53, send its digits, not a float)")
    if isinstance(value, str) and not re.fullmatch(r"-?[0-9]{1,80}", value):
        raise ValueError("must be an integer (decimal digits)")
    return value


def _documented(pattern: str, description: str, **extra: int) -> Any:
    """What the OpenAPI document says of a string type: its pattern and meaning. Schema
    only (the validators above check and give the reasons), so fuzzers and generated
    clients produce values that reach past validation."""
    return Field(json_schema_extra={"pattern": pattern, "description": description, **extra})


Address = Annotated[
    str,
    AfterValidator(_checksummed),
    _documented(
        r"^0x([0-9a-f]{40}|[0-9A-F]{40})$",
        "20-byte hex address: one case, or mixed case with a valid EIP-55 checksum",
    ),
]
Hash32 = Annotated[
    str, AfterValidator(_hash32), _documented(r"^0x[0-9a-fA-F]{64}$", "32-byte hex hash")
]
HexData = Annotated[
    str, AfterValidator(_hex_data), _documented(r"^0x([0-9a-fA-F]{2})*$", "hex bytes")
]
Bytecode = Annotated[
    str,
    AfterValidator(_bytecode),
    _documented(
        r"^0x([0-9a-fA-F]{2})+$",
        f"contract creation code, at most {MAX_BYTECODE_BYTES} bytes",
        maxLength=2 + 2 * MAX_BYTECODE_BYTES,
    ),
]
# The bounds come before the validator: after it, pydantic writes them into the JSON schema
# as "gt"/"le", which no client (nor schemathesis) reads as bounds.
Uint256 = Annotated[int, Field(ge=0, le=UINT256_MAX), BeforeValidator(_strict_int)]
PositiveUint256 = Annotated[int, Field(gt=0, le=UINT256_MAX), BeforeValidator(_strict_int)]
# Seconds since 1970 as the token contract stores them (uint64).
Uint64 = Annotated[int, Field(ge=0, le=2**64 - 1), BeforeValidator(_strict_int)]
BlockNumber = Annotated[int, Field(ge=0, le=2**63 - 1), BeforeValidator(_strict_int)]


class SecretParam:
    """Marks a parameter that never travels or rests in clear: it is sealed for the
    providers before its task goes on Kafka (ethgw_wire/sealing.py)."""


SECRET = SecretParam()
Password = Annotated[str, Field(min_length=8, max_length=256), SECRET]
