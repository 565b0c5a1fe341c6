"""Task secrets sealed for the providers, and the keys they are sealed with: passwords
never on Kafka in clear (issue #17, item 6)."""

from __future__ import annotations

import stat
from concurrent.futures import ThreadPoolExecutor
from pathlib import Path

import pytest

from ethgw_wire.errors import InvalidParamsError
from ethgw_wire.kafka import encode
from ethgw_wire.operations import new_task
from ethgw_wire.sealing import (
    GRANT_KEY_FILE,
    TASK_PRIVATE_FILE,
    GrantBox,
    SealError,
    TaskOpener,
    TaskSealer,
    ensure_sealing_keys,
)

PASSWORD = "a password nobody may read"
ADDRESS = "0x" + "11" * 20


@pytest.fixture
def folder(tmp_path: Path) -> Path:
    return ensure_sealing_keys(tmp_path / "sealing")


def test_a_sealed_task_carries_no_password_in_clear(folder: Path) -> None:
    """The sealed task's record on Kafka holds neither the password nor its params entry."""
    task = TaskSealer.of_folder(folder).seal_task(
        new_task("account.create", {"password": PASSWORD})
    )
    assert "password" not in task.params
    assert set(task.sealed) == {"password"}
    assert PASSWORD.encode() not in encode(task)


def test_the_providers_key_opens_a_sealed_task(folder: Path) -> None:
    """What the sealer sealed, the opener of the same folder gives back as the params."""
    task = new_task("account.unlock", {"address": ADDRESS, "password": PASSWORD})
    sealed = TaskSealer.of_folder(folder).seal_task(task)
    assert TaskOpener.of_folder(folder).task_params(sealed) == task.params


def test_another_platforms_key_does_not_open_a_sealed_task(folder: Path, tmp_path: Path) -> None:
    """A task sealed for one sealing folder is refused, naming the param, by another's opener."""
    task = new_task("account.create", {"password": PASSWORD})
    sealed = TaskSealer.of_folder(folder).seal_task(task)
    other = TaskOpener.of_folder(ensure_sealing_keys(tmp_path / "other"))
    with pytest.raises(InvalidParamsError) as refused:
        other.task_params(sealed)
    assert refused.value.field == "password"


def test_a_sealed_password_moved_into_another_task_does_not_open(folder: Path) -> None:
    """The seal is bound to its task: copied into another task's `sealed`, it is refused."""
    sealer, opener = TaskSealer.of_folder(folder), TaskOpener.of_folder(folder)
    first = sealer.seal_task(new_task("account.create", {"password": PASSWORD}))
    other = sealer.seal_task(new_task("account.create", {"password": "another password"}))
    second = other.model_copy(update={"sealed": first.sealed})
    with pytest.raises(InvalidParamsError, match="does not open"):
        opener.task_params(second)


def test_an_altered_sealed_password_does_not_open(folder: Path) -> None:
    """One character changed in the sealed text and the opener refuses it."""
    sealer, opener = TaskSealer.of_folder(folder), TaskOpener.of_folder(folder)
    task = sealer.seal_task(new_task("account.create", {"password": PASSWORD}))
    text = task.sealed["password"]
    # A middle character: each of its 6 bits is data (near the end, base64's padding bits
    # may be ignored, and a changed character there can decode to the same bytes).
    middle = len(text) // 2
    flipped = text[:middle] + ("A" if text[middle] != "A" else "B") + text[middle + 1 :]
    altered = task.model_copy(update={"sealed": {"password": flipped}})
    with pytest.raises(InvalidParamsError, match="password"):
        opener.task_params(altered)


def test_a_password_in_clear_is_refused_by_the_providers(folder: Path) -> None:
    """A task that names its password in `params` is refused with invalid_params on it."""
    task = new_task("account.unlock", {"address": ADDRESS, "password": PASSWORD})
    with pytest.raises(InvalidParamsError, match="never in clear") as refused:
        TaskOpener.of_folder(folder).task_params(task)
    assert refused.value.field == "password"


def test_a_sealed_param_that_is_not_secret_is_refused(folder: Path) -> None:
    """Only the operation's secret params may arrive sealed."""
    sealer, opener = TaskSealer.of_folder(folder), TaskOpener.of_folder(folder)
    task = new_task("token.balance", {"address": ADDRESS})
    smuggled = task.model_copy(update={"sealed": {"address": sealer.seal(ADDRESS, "x")}})
    with pytest.raises(InvalidParamsError, match="not a secret"):
        opener.task_params(smuggled)


def test_a_task_without_secrets_is_left_as_it_is(folder: Path) -> None:
    """Sealing a task with no secret params returns it unchanged."""
    task = new_task("token.balance", {"address": ADDRESS})
    assert TaskSealer.of_folder(folder).seal_task(task) is task


def test_the_sealing_keys_are_private_files_in_a_private_folder(folder: Path) -> None:
    """The folder is 0700 and the two private keys 0600."""
    assert stat.S_IMODE(folder.stat().st_mode) == 0o700
    for name in (TASK_PRIVATE_FILE, GRANT_KEY_FILE):
        assert stat.S_IMODE((folder / name).stat().st_mode) == 0o600


def test_processes_starting_at_once_share_one_set_of_keys(tmp_path: Path) -> None:
    """Eight concurrent first uses leave one folder whose keys every one of them reads."""
    target = tmp_path / "sealing"
    with ThreadPoolExecutor(8) as pool:
        list(pool.map(lambda _: ensure_sealing_keys(target), range(8)))
    assert sorted(p.name for p in target.iterdir()) == ["grants.key", "tasks.key", "tasks.pub"]
    assert [p.name for p in tmp_path.iterdir()] == ["sealing"]  # no temporary folder left


def test_a_grant_opens_only_under_its_own_binding(folder: Path) -> None:
    """A grant sealed for one binding (account, owner, expiry) refuses any other."""
    box = GrantBox.of_folder(folder)
    sealed = box.seal(b"key bytes", "account A until 10")
    assert box.open(sealed, "account A until 10") == b"key bytes"
    with pytest.raises(SealError):
        box.open(sealed, "account A until 11")
