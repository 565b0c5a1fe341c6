"""Secrets sealed for the providers: task passwords on Kafka and unlock grants.

Two platform keys, made once in the sealing folder (`SealingSettings.dir`, 0700):

- `tasks.key` / `tasks.pub`: an X25519 key pair. Whoever puts a task on Kafka (the task
  client of the read and write services, tools and tests) seals each secret parameter
  with the public half; only a provider, which holds the private half, can open it. A
  sealed value is bound to its task id, operation and parameter name, so it cannot be
  moved into another task.
- `grants.key`: an AES-256 key the providers share. An unlock grant holds the account's
  private key sealed with it, bound to the account, its owner and the grant's expiry.

Both ciphers are AES-GCM (pycryptodome, already what eth-keyfile uses): any change to a
sealed value, or to what it is bound to, makes it fail to open (SealError).
"""

from __future__ import annotations

import base64
import os
import secrets
import shutil
from pathlib import Path
from typing import Any

from Crypto.Cipher import AES
from Crypto.Hash import SHA256
from Crypto.Protocol.DH import import_x25519_private_key, import_x25519_public_key, key_agreement
from Crypto.Protocol.KDF import HKDF
from Crypto.PublicKey import ECC

from ethgw_wire.errors import InvalidParamsError
from ethgw_wire.messages import TaskMessage
from ethgw_wire.operations import UnknownOperationError, get_operation
from ethgw_wire.settings import SealingSettings
from service_kit.keyfiles import write_private

TASK_PRIVATE_FILE = "tasks.key"
TASK_PUBLIC_FILE = "tasks.pub"
GRANT_KEY_FILE = "grants.key"

_VERSION = "s1."  # the prefix of every sealed value: the format may change, old ones stay
_NONCE_BYTES = 12
_TAG_BYTES = 16
_X25519_BYTES = 32


class SealError(ValueError):
    """A sealed value that does not open: altered, bound elsewhere, or for another key."""


class SealingKeyError(RuntimeError):
    """The sealing folder exists but lacks a key file."""


# -- the keys ------------------------------------------------------------------------------


def ensure_sealing_keys(folder: Path) -> Path:
    """The sealing folder, made on first use with its three keys.

    Safe when several processes start at once: the keys are written into a temporary
    folder that is renamed into place, so exactly one set wins and everyone reads it.
    """
    if folder.exists():
        return folder
    folder.parent.mkdir(parents=True, exist_ok=True)
    temporary = folder.with_name(f".{folder.name}.{os.getpid()}.{secrets.token_hex(4)}")
    temporary.mkdir(mode=0o700)
    try:
        private = ECC.generate(curve="Curve25519")
        write_private(temporary / TASK_PRIVATE_FILE, private.seed.hex())
        public = private.public_key().export_key(format="raw")
        (temporary / TASK_PUBLIC_FILE).write_text(public.hex())
        write_private(temporary / GRANT_KEY_FILE, secrets.token_bytes(32).hex())
        os.rename(temporary, folder)
    except OSError:
        if not folder.exists():
            raise
        # another process won the race; its keys are the ones
    finally:
        shutil.rmtree(temporary, ignore_errors=True)
    return folder


def _read_key(folder: Path, name: str, size: int) -> bytes:
    path = ensure_sealing_keys(folder) / name
    try:
        key = bytes.fromhex(path.read_text().strip())
    except (FileNotFoundError, ValueError):
        raise SealingKeyError(
            f"{path} is missing or not hex: delete {folder} to make new keys"
        ) from None
    if len(key) != size:
        raise SealingKeyError(f"{path} holds {len(key)} bytes, not {size}")
    return key


def _encode(*parts: bytes) -> str:
    return _VERSION + base64.urlsafe_b64encode(b"".join(parts)).decode()


def _decode(sealed: str, head: int) -> tuple[bytes, bytes, bytes, bytes]:
    """(head bytes, nonce, tag, ciphertext) of a sealed value."""
    if not sealed.startswith(_VERSION):
        raise SealError("not a sealed value")
    try:
        raw = base64.urlsafe_b64decode(sealed[len(_VERSION) :].encode())
    except ValueError:
        raise SealError("not a sealed value") from None
    if len(raw) < head + _NONCE_BYTES + _TAG_BYTES:
        raise SealError("a sealed value too short")
    nonce_at, tag_at = head, head + _NONCE_BYTES
    body_at = tag_at + _TAG_BYTES
    return raw[:head], raw[nonce_at:tag_at], raw[tag_at:body_at], raw[body_at:]


def _gcm_seal(key: bytes, plain: bytes, context: str) -> tuple[bytes, bytes, bytes]:
    nonce = secrets.token_bytes(_NONCE_BYTES)
    cipher = AES.new(key, AES.MODE_GCM, nonce=nonce)
    cipher.update(context.encode())
    body, tag = cipher.encrypt_and_digest(plain)
    return nonce, tag, body


def _gcm_open(key: bytes, nonce: bytes, tag: bytes, body: bytes, context: str) -> bytes:
    cipher = AES.new(key, AES.MODE_GCM, nonce=nonce)
    cipher.update(context.encode())
    try:
        return bytes(cipher.decrypt_and_verify(body, tag))
    except ValueError:
        raise SealError("the sealed value does not open with this key and binding") from None


def _shared_key(secret: bytes | bytearray | memoryview) -> bytes:
    key = HKDF(bytes(secret), 32, b"ethgw task secret", SHA256)
    assert isinstance(key, bytes)  # one key asked for: one key given
    return key


# -- task secrets: sealed by any producer, opened by the providers -------------------------


class TaskSealer:
    """Seals a task's secret parameters with the providers' public key."""

    def __init__(self, public_key: bytes) -> None:
        self._public = import_x25519_public_key(public_key)

    @classmethod
    def of_folder(cls, folder: Path | None = None) -> TaskSealer:
        """The sealer of the platform's sealing folder (the setting's, by default)."""
        folder = SealingSettings().dir if folder is None else folder
        return cls(_read_key(folder, TASK_PUBLIC_FILE, _X25519_BYTES))

    def seal(self, secret: str, context: str) -> str:
        ephemeral = ECC.generate(curve="Curve25519")
        key = key_agreement(static_pub=self._public, eph_priv=ephemeral, kdf=_shared_key)
        head = ephemeral.public_key().export_key(format="raw")
        return _encode(head, *_gcm_seal(key, secret.encode(), context))

    def seal_task(self, task: TaskMessage) -> TaskMessage:
        """The task with each secret parameter moved from `params` into `sealed`."""
        names = _secret_params(task.operation)
        found = [name for name in names if name in task.params]
        if not found:
            return task
        params = {k: v for k, v in task.params.items() if k not in found}
        sealed = {
            name: self.seal(str(task.params[name]), task_secret_context(task, name))
            for name in found
        }
        return task.model_copy(update={"params": params, "sealed": {**task.sealed, **sealed}})


class TaskOpener:
    """Opens what a TaskSealer sealed: the providers' private key."""

    def __init__(self, private_key: bytes) -> None:
        self._private = import_x25519_private_key(private_key)

    @classmethod
    def of_folder(cls, folder: Path | None = None) -> TaskOpener:
        folder = SealingSettings().dir if folder is None else folder
        return cls(_read_key(folder, TASK_PRIVATE_FILE, _X25519_BYTES))

    def open(self, sealed: str, context: str) -> str:
        head, nonce, tag, body = _decode(sealed, _X25519_BYTES)
        try:
            ephemeral = import_x25519_public_key(head)
        except ValueError:
            raise SealError("the sealed value names no valid key") from None
        key = key_agreement(static_priv=self._private, eph_pub=ephemeral, kdf=_shared_key)
        try:
            return _gcm_open(key, nonce, tag, body, context).decode()
        except UnicodeDecodeError:
            raise SealError("the sealed value is not text") from None

    def task_params(self, task: TaskMessage) -> dict[str, Any]:
        """The task's parameters with its sealed ones opened. A secret parameter in clear,
        a sealed one that is not secret, or one that does not open: InvalidParamsError
        naming the parameter."""
        names = _secret_params(task.operation)
        for name in names:
            if name in task.params:
                raise InvalidParamsError(
                    f"{name}: must arrive sealed for the providers, never in clear", field=name
                )
        params = dict(task.params)
        for name, sealed in task.sealed.items():
            if name not in names:
                raise InvalidParamsError(f"{name}: is not a secret parameter", field=name)
            try:
                params[name] = self.open(sealed, task_secret_context(task, name))
            except SealError as error:
                raise InvalidParamsError(f"{name}: {error}", field=name) from None
        return params


def task_secret_context(task: TaskMessage, name: str) -> str:
    """What a sealed parameter is bound to: its task, operation and name."""
    return f"ethgw task secret v1|{task.task_id}|{task.operation}|{name}"


def _secret_params(operation_name: str) -> tuple[str, ...]:
    try:
        return get_operation(operation_name).secret_params
    except UnknownOperationError:
        return ()


# -- unlock grants: sealed and opened by the providers only --------------------------------


class GrantBox:
    """Seals an unlocked account's private key with the key the providers share."""

    def __init__(self, key: bytes) -> None:
        self._key = key

    @classmethod
    def of_folder(cls, folder: Path | None = None) -> GrantBox:
        folder = SealingSettings().dir if folder is None else folder
        return cls(_read_key(folder, GRANT_KEY_FILE, 32))

    def seal(self, plain: bytes, context: str) -> str:
        return _encode(*_gcm_seal(self._key, plain, context))

    def open(self, sealed: str, context: str) -> bytes:
        _, nonce, tag, body = _decode(sealed, 0)
        return _gcm_open(self._key, nonce, tag, body, context)
