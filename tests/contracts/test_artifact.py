"""The build of the contracts (no chain): paris target, no PUSH0, reproducible,
skipped when unchanged, loud on errors; the artifact loader and its helpers."""

from __future__ import annotations

import hashlib
import subprocess
from pathlib import Path

import pytest
from eth_abi.abi import encode
from eth_utils.address import to_checksum_address

from ethgw_wire.artifacts import (
    ArtifactInvalidError,
    ArtifactNotFoundError,
    ContractArtifact,
    decode_custom_error,
    error_selector,
    find_push0,
    load_artifact,
    strip_metadata,
)
from service_kit.paths import REPO_ROOT

COMPILE_SCRIPT = REPO_ROOT / "scripts" / "compile_contracts.js"
SOURCE = REPO_ROOT / "contracts" / "PlatformToken.sol"


def _compile(*args: str | Path) -> subprocess.CompletedProcess[str]:
    return subprocess.run(
        ["node", str(COMPILE_SCRIPT), *map(str, args)],
        capture_output=True,
        text=True,
        timeout=120,
        check=False,
    )


@pytest.fixture(scope="module")
def two_builds(tmp_path_factory: pytest.TempPathFactory) -> tuple[Path, Path]:
    """The contracts compiled from scratch twice, concurrently, into two folders."""
    outs = (tmp_path_factory.mktemp("build-a"), tmp_path_factory.mktemp("build-b"))
    runs = [
        subprocess.Popen(
            ["node", str(COMPILE_SCRIPT), "--force", "--out", str(out)],
            stdout=subprocess.PIPE,
            stderr=subprocess.PIPE,
            text=True,
        )
        for out in outs
    ]
    for run in runs:
        _, stderr = run.communicate(timeout=120)
        assert run.returncode == 0, stderr
    return outs


def test_artifact_targets_paris(token_artifact: ContractArtifact) -> None:
    """The artifact was compiled for EVM paris by solc 0.8.28."""
    assert token_artifact.evm_version == "paris"
    assert token_artifact.solc_version.startswith("0.8.28+")


def test_creation_bytecode_has_no_push0(token_artifact: ContractArtifact) -> None:
    """The creation bytecode (constructor and runtime) contains no PUSH0 instruction."""
    assert find_push0(strip_metadata(token_artifact.bytecode_bytes)) is None


def test_runtime_bytecode_has_no_push0(token_artifact: ContractArtifact) -> None:
    """The deployed bytecode contains no PUSH0 instruction."""
    assert find_push0(strip_metadata(token_artifact.deployed_bytecode_bytes)) is None


def test_artifact_is_built_from_the_current_source(token_artifact: ContractArtifact) -> None:
    """The installed artifact's source hash is the hash of contracts/PlatformToken.sol."""
    assert token_artifact.source_sha256 == hashlib.sha256(SOURCE.read_bytes()).hexdigest()


def test_find_push0_finds_the_opcode() -> None:
    """A 0x5f in instruction position is reported at its offset."""
    assert find_push0(bytes.fromhex("6001005f")) == 3


def test_find_push0_skips_push_data() -> None:
    """A 0x5f inside PUSH1..PUSH32 data is data, not PUSH0."""
    assert find_push0(bytes.fromhex("605f7f" + "5f" * 32 + "00")) is None


def test_strip_metadata_removes_the_cbor_tail(token_artifact: ContractArtifact) -> None:
    """The runtime without metadata ends where solc's CBOR map (0xa2...) begins."""
    code = token_artifact.deployed_bytecode_bytes
    stripped = strip_metadata(code)
    tail = code[len(stripped) :]
    assert tail[0] == 0xA2
    assert int.from_bytes(tail[-2:], "big") == len(tail) - 2


def test_two_builds_give_identical_bytecode(two_builds: tuple[Path, Path]) -> None:
    """Compiling twice from scratch gives byte-identical bytecode."""
    first, second = (load_artifact("PlatformToken", out) for out in two_builds)
    assert first.bytecode == second.bytecode
    assert first.deployed_bytecode == second.deployed_bytecode


def test_build_matches_the_installed_artifact(
    two_builds: tuple[Path, Path], token_artifact: ContractArtifact
) -> None:
    """A fresh build is byte-identical to the artifact the bootstrap installed."""
    built = two_builds[0] / "PlatformToken.json"
    installed = REPO_ROOT / ".tools" / "contracts" / "PlatformToken.json"
    assert built.read_bytes() == installed.read_bytes()


def test_unchanged_sources_are_not_recompiled(two_builds: tuple[Path, Path]) -> None:
    """A second run over unchanged sources reports them up to date and rewrites nothing."""
    out = two_builds[0]
    before = (out / "PlatformToken.json").stat().st_mtime_ns
    result = _compile("--out", out)
    assert result.returncode == 0, result.stderr
    assert "up to date" in result.stdout
    assert (out / "PlatformToken.json").stat().st_mtime_ns == before


def test_compile_error_exits_non_zero_with_the_message(tmp_path: Path) -> None:
    """A broken source makes the build fail with solc's error and no artifact."""
    src = tmp_path / "src"
    src.mkdir()
    (src / "Broken.sol").write_text(
        "// SPDX-License-Identifier: MIT\npragma solidity ^0.8.20;\n"
        "contract Broken { function f() external { undeclared = 1; } }\n"
    )
    result = _compile("--src", src, "--out", tmp_path / "out")
    assert result.returncode == 1
    assert "DeclarationError: Undeclared identifier" in result.stderr
    assert not (tmp_path / "out" / "Broken.json").exists()


def test_missing_artifact_names_the_file_and_the_fix(tmp_path: Path) -> None:
    """Loading an artifact that was never built names its path and `make bootstrap`."""
    with pytest.raises(ArtifactNotFoundError, match=r"Nope\.json is missing; run make bootstrap"):
        load_artifact("Nope", tmp_path)


def test_corrupt_artifact_is_reported_as_invalid(tmp_path: Path) -> None:
    """An artifact without bytecode is refused with the file's path."""
    (tmp_path / "Bad.json").write_text('{"contractName": "Bad", "abi": []}')
    with pytest.raises(ArtifactInvalidError, match=r"Bad\.json is not a valid contract artifact"):
        load_artifact("Bad", tmp_path)


def test_custom_error_is_decoded_by_name(token_artifact: ContractArtifact) -> None:
    """Revert data of InsufficientBalance decodes to its name and named arguments."""
    error = next(e for e in token_artifact.abi if e.get("name") == "InsufficientBalance")
    account = "0x" + "ab" * 20
    data = error_selector(error) + encode(["address", "uint256", "uint256"], [account, 3, 5])
    decoded = decode_custom_error(token_artifact.abi, data)
    assert decoded is not None
    assert decoded.name == "InsufficientBalance"
    assert decoded.args == {
        "account": to_checksum_address(account),
        "balance": 3,
        "needed": 5,
    }


def test_unknown_revert_data_decodes_to_none(token_artifact: ContractArtifact) -> None:
    """An Error(string) revert is not one of the contract's custom errors."""
    data = bytes.fromhex("08c379a0") + encode(["string"], ["nope"])
    assert decode_custom_error(token_artifact.abi, data) is None
