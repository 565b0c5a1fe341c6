"""API keys: roles, hashed storage in <state>/gateway/api-keys.json, the first admin key.

Only the SHA-256 of a key is stored. A plain hash (no salt, no slow KDF) is enough because
the keys are 256-bit random tokens, not passwords: nothing can be guessed from the hash.
The plaintext exists twice only: in the return value of `create_key`, and, for the admin
key made on the first run, in the 0600 file `admin.key` that `ethgw up` prints.
"""

from __future__ import annotations

import fcntl
import hashlib
import json
import os
import secrets
import time
from collections.abc import Iterator
from contextlib import contextmanager
from dataclasses import asdict, dataclass
from enum import StrEnum
from pathlib import Path

from service_kit.keyfiles import write_private

KEY_PREFIX = "ethgw_"
FILE_VERSION = 1


class Role(StrEnum):
    USER = "user"
    ADMIN = "admin"


@dataclass(frozen=True)
class ApiKey:
    """A stored key: never the key itself, only its hash. `key_id` (the hash's first 12
    hex digits) names the key in logs, metrics and rate limits."""

    key_id: str
    name: str
    role: Role
    sha256: str
    created_at: float


class KeyFileError(RuntimeError):
    """The keys file exists but cannot be read as a keys file."""


def hash_key(plaintext: str) -> str:
    return hashlib.sha256(plaintext.encode()).hexdigest()


def keys_path(state_dir: Path) -> Path:
    return state_dir / "gateway" / "api-keys.json"


def admin_key_path(state_dir: Path) -> Path:
    return state_dir / "gateway" / "admin.key"


def load_keys(path: Path) -> list[ApiKey]:
    """The keys of a keys file; an absent file holds none."""
    try:
        text = path.read_text()
    except FileNotFoundError:
        return []
    try:
        data = json.loads(text)
        return [
            ApiKey(
                key_id=item["key_id"],
                name=item["name"],
                role=Role(item["role"]),
                sha256=item["sha256"],
                created_at=float(item["created_at"]),
            )
            for item in data["keys"]
        ]
    except (ValueError, KeyError, TypeError) as error:
        raise KeyFileError(f"{path}: not a keys file ({error})") from None


def _save_keys(path: Path, keys: list[ApiKey]) -> None:
    # Written beside and renamed over, so the gateway's reload never reads half a file.
    temporary = path.with_name(f".{path.name}.{os.getpid()}.tmp")
    document = {"v": FILE_VERSION, "keys": [asdict(k) for k in keys]}
    write_private(temporary, json.dumps(document, indent=2) + "\n")
    os.replace(temporary, path)


@contextmanager
def _locked(state_dir: Path) -> Iterator[Path]:
    """The keys file, locked against other processes changing it at the same time."""
    path = keys_path(state_dir)
    path.parent.mkdir(parents=True, exist_ok=True)
    fd = os.open(path.with_name(".api-keys.lock"), os.O_RDWR | os.O_CREAT, 0o600)
    try:
        fcntl.flock(fd, fcntl.LOCK_EX)
        yield path
    finally:
        os.close(fd)  # closing releases the lock


def create_key(state_dir: Path, name: str, role: Role | str) -> str:
    """Make a key, store its hash, and return the plaintext (shown once, never stored)."""
    role = Role(role)
    if not name or len(name) > 100:
        raise ValueError("a key's name must be 1-100 characters")
    plaintext = KEY_PREFIX + secrets.token_urlsafe(32)
    digest = hash_key(plaintext)
    key = ApiKey(digest[:12], name, role, digest, time.time())
    with _locked(state_dir) as path:
        _save_keys(path, [*load_keys(path), key])
    return plaintext


def matching_keys(keys: list[ApiKey], name_or_id: str) -> list[ApiKey]:
    """The keys named `name_or_id`, or whose key id it is."""
    return [k for k in keys if name_or_id in (k.name, k.key_id)]


def revoke_keys(state_dir: Path, name_or_id: str) -> list[ApiKey]:
    """Remove the keys with this name or key id, and return them. A running gateway stops
    accepting them at its next reload of the file (`keys_reload_s`). When one of them is
    the key of `admin.key`, that file goes too: it would print a key that opens nothing."""
    with _locked(state_dir) as path:
        keys = load_keys(path)
        revoked = matching_keys(keys, name_or_id)
        if revoked:
            _save_keys(path, [k for k in keys if k not in revoked])
        admin_key = read_admin_key(state_dir)
        if admin_key is not None and hash_key(admin_key) in {k.sha256 for k in revoked}:
            admin_key_path(state_dir).unlink()
        return revoked


def ensure_admin_key(state_dir: Path) -> bool:
    """Make the first admin key when there is no admin key yet; True when it was made.

    Its plaintext goes to the 0600 file `admin.key` (and nowhere else: it is never
    logged), where `ethgw up` reads it to print it.
    """
    with _locked(state_dir) as path:
        if any(k.role is Role.ADMIN for k in load_keys(path)):
            return False
        plaintext = KEY_PREFIX + secrets.token_urlsafe(32)
        digest = hash_key(plaintext)
        key = ApiKey(digest[:12], "admin", Role.ADMIN, digest, time.time())
        # The plaintext file first: a crash in between leaves a key file without a key
        # (the next start makes one), never a stored key nobody can know.
        write_private(admin_key_path(state_dir), plaintext + "\n")
        _save_keys(path, [*load_keys(path), key])
        return True


def read_admin_key(state_dir: Path) -> str | None:
    """The first admin key's plaintext, if its file is still there (for `ethgw up`)."""
    try:
        return admin_key_path(state_dir).read_text().strip() or None
    except FileNotFoundError:
        return None


class KeyRing:
    """The keys the gateway accepts, reloaded when the keys file changes."""

    def __init__(self, path: Path) -> None:
        self.path = path
        self._by_hash: dict[str, ApiKey] = {}
        self._stamp: tuple[int, int, int] | None = None

    def __len__(self) -> int:
        return len(self._by_hash)

    def key_ids(self) -> set[str]:
        return {k.key_id for k in self._by_hash.values()}

    def holds(self, key: ApiKey) -> bool:
        """Whether `key` is still accepted (not revoked since it was verified)."""
        return key.sha256 in self._by_hash

    def verify(self, plaintext: str | None) -> ApiKey | None:
        """The key this plaintext is, or None. A dict lookup by hash: the time it takes
        depends on the hash, which tells an attacker nothing about a stored key."""
        if not plaintext or len(plaintext) > 256:
            return None
        return self._by_hash.get(hash_key(plaintext))

    def _file_stamp(self) -> tuple[int, int, int] | None:
        try:
            stat = self.path.stat()
        except FileNotFoundError:
            return None
        # Each save renames a new file over the old one: a new inode even when a revoke and
        # a create within one mtime tick leave the size unchanged.
        return (stat.st_ino, stat.st_mtime_ns, stat.st_size)

    def reload_if_changed(self) -> frozenset[str] | None:
        """Re-read the file when its inode, mtime or size changed: the ids of the keys no
        longer accepted (empty when none went), or None when the file did not change. A file
        that fails to parse keeps the keys loaded before (and raises KeyFileError)."""
        stamp = self._file_stamp()
        if stamp == self._stamp:
            return None
        by_hash = {k.sha256: k for k in load_keys(self.path)}
        kept = {k.key_id for k in by_hash.values()}
        gone = frozenset(k.key_id for k in self._by_hash.values() if k.key_id not in kept)
        self._by_hash = by_hash
        self._stamp = stamp
        return gone
