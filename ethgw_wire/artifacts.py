"""Compiled contract artifacts (written by scripts/compile_contracts.js into
.tools/contracts) and the pure helpers that go with them: the PUSH0 check for
this London-era chain and the decoding of a custom-error revert."""

from __future__ import annotations

from collections.abc import Sequence
from pathlib import Path
from typing import Any, cast

from eth_abi.abi import decode
from eth_abi.exceptions import DecodingError
from eth_typing import ABI
from eth_utils.address import to_checksum_address
from eth_utils.crypto import keccak
from pydantic import BaseModel, ConfigDict, Field, ValidationError, field_validator
from pydantic.alias_generators import to_camel

from service_kit.paths import tools_dir

PUSH0 = 0x5F
PUSH1 = 0x60
PUSH32 = 0x7F


class ContractArtifactError(Exception):
    """Base of every failure to load or use a compiled contract artifact."""


class ArtifactNotFoundError(ContractArtifactError):
    """The artifact file does not exist: the contracts were never compiled."""


class ArtifactInvalidError(ContractArtifactError):
    """The artifact file exists but is not a readable artifact."""


def artifacts_dir() -> Path:
    """Where `make bootstrap` writes the compiled contracts."""
    return tools_dir() / "contracts"


class ContractArtifact(BaseModel):
    """One compiled contract: ABI, creation and runtime bytecode, and how it was built."""

    model_config = ConfigDict(frozen=True, alias_generator=to_camel, populate_by_name=True)

    contract_name: str
    source_name: str
    abi: list[dict[str, Any]]
    bytecode: str = Field(pattern=r"^0x([0-9a-f]{2})+$")
    deployed_bytecode: str = Field(pattern=r"^0x([0-9a-f]{2})+$")
    solc_version: str
    evm_version: str
    source_sha256: str = Field(pattern=r"^[0-9a-f]{64}$")

    @field_validator("bytecode", "deployed_bytecode", mode="before")
    @classmethod
    def _lower_hex(cls, value: object) -> object:
        return value.lower() if isinstance(value, str) else value

    @property
    def web3_abi(self) -> ABI:
        """The ABI typed as web3.py and eth-typing expect it."""
        return cast(ABI, self.abi)

    @property
    def bytecode_bytes(self) -> bytes:
        return bytes.fromhex(self.bytecode.removeprefix("0x"))

    @property
    def deployed_bytecode_bytes(self) -> bytes:
        return bytes.fromhex(self.deployed_bytecode.removeprefix("0x"))


def load_artifact(name: str, directory: Path | None = None) -> ContractArtifact:
    """The artifact of contract `name` (e.g. "PlatformToken") from `directory`
    (default: .tools/contracts)."""
    path = (directory or artifacts_dir()) / f"{name}.json"
    try:
        text = path.read_text(encoding="utf-8")
    except FileNotFoundError:
        raise ArtifactNotFoundError(
            f"no compiled artifact for contract {name!r}: {path} is missing; "
            "run make bootstrap (or node scripts/compile_contracts.js)"
        ) from None
    try:
        return ContractArtifact.model_validate_json(text)
    except ValidationError as exc:
        raise ArtifactInvalidError(
            f"{path} is not a valid contract artifact ({exc.error_count()} problem(s): "
            f"{exc.errors()[0]['msg']}); run make bootstrap to rebuild it"
        ) from None


# -- bytecode ------------------------------------------------------------------------


def strip_metadata(code: bytes) -> bytes:
    """The code without solc's trailing CBOR metadata (whose last two bytes give
    its length), which is data, not instructions. Unchanged if there is none."""
    if len(code) < 2:
        return code
    length = int.from_bytes(code[-2:], "big")
    # solc's metadata is a CBOR map: its first byte is 0xa1..0xb7 (a map of 1..23 pairs).
    if length + 2 > len(code) or not 0xA1 <= code[-2 - length] <= 0xB7:
        return code
    return code[: -2 - length]


def find_push0(code: bytes) -> int | None:
    """Offset of the first PUSH0 instruction (Shanghai's 0x5f, which a London chain
    rejects), walking the instructions and skipping PUSH1..PUSH32 data; None if none.

    The walk is linear, so data placed after the code (constructor arguments,
    a runtime embedded in creation code) is read as instructions too: a hit there
    is a false positive, never a miss in the code itself."""
    offset = 0
    end = len(code)
    while offset < end:
        opcode = code[offset]
        if opcode == PUSH0:
            return offset
        offset += 1
        if PUSH1 <= opcode <= PUSH32:
            offset += opcode - PUSH1 + 1
    return None


# -- custom errors -------------------------------------------------------------------


class DecodedError(BaseModel):
    """A custom error a contract reverted with: its name and its arguments by name
    (addresses checksummed)."""

    model_config = ConfigDict(frozen=True)

    name: str
    args: dict[str, Any]


def _abi_type(item: dict[str, Any]) -> str:
    """The canonical type of one ABI input (tuples spelled out, as in signatures)."""
    kind = str(item["type"])
    if kind.startswith("tuple"):
        inner = ",".join(_abi_type(c) for c in item.get("components", []))
        return f"({inner}){kind.removeprefix('tuple')}"
    return kind


def error_selector(error: dict[str, Any]) -> bytes:
    """The 4-byte selector of an ABI error entry."""
    types = ",".join(_abi_type(i) for i in error.get("inputs", []))
    return keccak(text=f"{error['name']}({types})")[:4]


def decode_custom_error(abi: Sequence[dict[str, Any]], data: bytes | str) -> DecodedError | None:
    """The custom error of `abi` that revert `data` encodes, or None when the data
    matches none of them (a plain require message, a panic, or another contract's)."""
    raw = bytes.fromhex(data.removeprefix("0x")) if isinstance(data, str) else data
    if len(raw) < 4:
        return None
    for item in abi:
        if item.get("type") != "error" or error_selector(item) != raw[:4]:
            continue
        inputs = item.get("inputs", [])
        try:
            values = decode([_abi_type(i) for i in inputs], raw[4:])
        except DecodingError:
            return None
        names = [str(i.get("name") or f"arg{n}") for n, i in enumerate(inputs)]
        args = {
            name: to_checksum_address(value) if i["type"] == "address" else value
            for name, value, i in zip(names, values, inputs, strict=True)
        }
        return DecodedError(name=str(item["name"]), args=args)
    return None


def check_abi(abi: list[dict[str, Any]]) -> None:
    """Raise ValueError saying why when web3 cannot read `abi` as a contract's ABI."""
    from web3 import Web3  # heavy; only deploys need it

    try:
        Web3().eth.contract(abi=cast(ABI, abi))
    except Exception as error:  # web3 raises many kinds on foreign input; each means "no"
        raise ValueError(f"is not a readable contract ABI: {_first_line(error)}") from None


def constructor_data(abi: list[dict[str, Any]], bytecode: str, args: Sequence[Any]) -> str:
    """A deploy's transaction data: the creation code followed by the ABI-encoded constructor
    arguments. Pure (web3 with no provider), so a request is checked before it is a task.

    Raises ValueError saying why when the arguments do not fit the ABI.
    """
    from web3 import Web3

    try:
        factory = Web3().eth.contract(abi=cast(ABI, abi), bytecode=bytecode)
        return str(factory.constructor(*args).data_in_transaction)
    except Exception as error:  # as in check_abi
        raise ValueError(f"do not fit the ABI's constructor: {_first_line(error)}") from None


def _first_line(error: Exception) -> str:
    text = str(error).strip()
    return text.splitlines()[0] if text else type(error).__name__
