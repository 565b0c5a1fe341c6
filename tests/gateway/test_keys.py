"""API keys (hashed storage, roles, the first admin key) and the registry token."""

from __future__ import annotations

import json
import stat
from pathlib import Path

import pytest

from ethgw_wire.registration import ensure_registry_token, registry_token_path
from gateway.keys import (
    KeyRing,
    Role,
    admin_key_path,
    create_key,
    ensure_admin_key,
    hash_key,
    keys_path,
    load_keys,
    read_admin_key,
    revoke_keys,
)


def _mode(path: Path) -> int:
    return stat.S_IMODE(path.stat().st_mode)


def test_keys_are_stored_hashed(tmp_path: Path) -> None:
    """The keys file holds the SHA-256 of a key, never the key."""
    plaintext = create_key(tmp_path, "alice", "user")
    text = keys_path(tmp_path).read_text()
    assert plaintext not in text
    assert hash_key(plaintext) in text
    assert json.loads(text)["keys"][0]["role"] == "user"


def test_keys_file_is_private(tmp_path: Path) -> None:
    """The keys file is readable by its owner only."""
    create_key(tmp_path, "alice", Role.USER)
    assert _mode(keys_path(tmp_path)) == 0o600


def test_verify_accepts_a_created_key_with_its_role(tmp_path: Path) -> None:
    """A key made by create_key verifies, with its name and role."""
    plaintext = create_key(tmp_path, "ops", "admin")
    ring = KeyRing(keys_path(tmp_path))
    ring.reload_if_changed()
    key = ring.verify(plaintext)
    assert key is not None
    assert key.role is Role.ADMIN
    assert key.name == "ops"


def test_verify_refuses_wrong_and_empty_keys(tmp_path: Path) -> None:
    """A key that was never made, a truncated one, or nothing at all does not verify."""
    plaintext = create_key(tmp_path, "alice", "user")
    ring = KeyRing(keys_path(tmp_path))
    ring.reload_if_changed()
    assert ring.verify(plaintext[:-1]) is None
    assert ring.verify("ethgw_" + "x" * 43) is None
    assert ring.verify("") is None
    assert ring.verify(None) is None


def test_create_key_refuses_an_unknown_role(tmp_path: Path) -> None:
    """Only the user and admin roles exist."""
    with pytest.raises(ValueError, match="root"):
        create_key(tmp_path, "alice", "root")


def test_first_admin_key_is_made_once_into_a_private_file(tmp_path: Path) -> None:
    """ensure_admin_key makes one admin key, its plaintext in a 0600 file; later calls
    make nothing."""
    assert ensure_admin_key(tmp_path)
    assert _mode(admin_key_path(tmp_path)) == 0o600
    plaintext = read_admin_key(tmp_path)
    assert plaintext is not None
    assert not ensure_admin_key(tmp_path)
    assert read_admin_key(tmp_path) == plaintext
    keys = load_keys(keys_path(tmp_path))
    assert [(k.role, k.sha256) for k in keys] == [(Role.ADMIN, hash_key(plaintext))]


def test_revoke_removes_by_name(tmp_path: Path) -> None:
    """A revoked key no longer verifies after the ring reloads."""
    plaintext = create_key(tmp_path, "alice", "user")
    ring = KeyRing(keys_path(tmp_path))
    ring.reload_if_changed()
    assert [k.name for k in revoke_keys(tmp_path, "alice")] == ["alice"]
    assert ring.reload_if_changed() is not None
    assert ring.verify(plaintext) is None


def test_a_reload_names_the_keys_no_longer_accepted(tmp_path: Path) -> None:
    """The reload after a revoke returns the revoked key's id, and only it; a reload that
    only added a key returns none."""
    create_key(tmp_path, "alice", "user")
    create_key(tmp_path, "bob", "user")
    ring = KeyRing(keys_path(tmp_path))
    ring.reload_if_changed()
    ids = {k.name: k.key_id for k in load_keys(keys_path(tmp_path))}
    revoke_keys(tmp_path, "alice")
    assert ring.reload_if_changed() == frozenset({ids["alice"]})
    create_key(tmp_path, "carol", "user")
    assert ring.reload_if_changed() == frozenset()


def test_ring_reloads_only_when_the_file_changed(tmp_path: Path) -> None:
    """A key made after loading is seen at the next reload; an unchanged file is not
    read again."""
    ring = KeyRing(keys_path(tmp_path))
    assert ring.reload_if_changed() is None  # no file yet: nothing changed
    plaintext = create_key(tmp_path, "bob", "user")
    assert ring.reload_if_changed() == frozenset()
    assert ring.verify(plaintext) is not None
    assert ring.reload_if_changed() is None


def test_registry_token_is_made_once_and_private(tmp_path: Path) -> None:
    """The registry token is random on first use, then the same, in a 0600 file."""
    token = ensure_registry_token(tmp_path)
    assert len(token) >= 32
    assert ensure_registry_token(tmp_path) == token
    assert _mode(registry_token_path(tmp_path)) == 0o600


def test_revoke_by_key_id_keeps_the_other_keys_of_that_name(tmp_path: Path) -> None:
    """Revoking one key id removes that key alone, even when another key has its name."""
    first = create_key(tmp_path, "app", "user")
    second = create_key(tmp_path, "app", "user")
    revoked = revoke_keys(tmp_path, hash_key(first)[:12])
    assert [k.sha256 for k in revoked] == [hash_key(first)]
    assert [k.sha256 for k in load_keys(keys_path(tmp_path))] == [hash_key(second)]


def test_revoke_of_an_unknown_name_changes_nothing(tmp_path: Path) -> None:
    """A name or id no key has revokes nothing and leaves the file as it was."""
    create_key(tmp_path, "alice", "user")
    before = keys_path(tmp_path).read_text()
    assert revoke_keys(tmp_path, "bob") == []
    assert keys_path(tmp_path).read_text() == before


def test_revoking_the_first_admin_key_removes_its_plaintext_file(tmp_path: Path) -> None:
    """admin.key goes with the key it holds, so `ethgw up` never prints a dead key."""
    ensure_admin_key(tmp_path)
    create_key(tmp_path, "ops", "admin")
    revoke_keys(tmp_path, "ops")
    assert admin_key_path(tmp_path).exists()
    revoke_keys(tmp_path, "admin")
    assert not admin_key_path(tmp_path).exists()
