"""Calls between the platform's own processes, signed: the read and write services and the
cluster manager take a request only when its HMAC-SHA256 signature checks.

The gateway signs what it forwards; the providers and the platform's tools sign their calls
to the manager. The key is one random secret of the state folder (`ensure_request_key`,
mode 0600, in `ServiceAuthSettings.key_file`). The signature covers the method, the Host,
the path with its query, a timestamp, a nonce, the body's SHA-256 and the caller header
(ethgw_wire.callers), so a caller cannot be forged, a body cannot be swapped and a request
cannot be sent to another instance. A request older or newer than `max_age_s` is refused,
and so is a nonce already seen within that window: a captured request cannot be replayed.

A service wraps its app in `SignedRequestsOnly`; open paths (health, readiness, metrics)
skip the check. Refusals are 401 with the JSON envelope naming the reason.
"""

from __future__ import annotations

import collections
import hashlib
import hmac
import json
import logging
import re
import secrets
import time
from collections.abc import Callable, Collection, Generator, Iterable
from pathlib import Path
from urllib.parse import urlsplit

import httpx
from starlette.types import ASGIApp, Message, Receive, Scope, Send

from ethgw_wire.callers import CALLER_HEADER
from ethgw_wire.http_api import error_envelope
from ethgw_wire.settings import ServiceAuthSettings
from service_kit.keyfiles import ensure_random_secret

SIGNATURE_HEADER = "X-Ethgw-Signature"
TIMESTAMP_HEADER = "X-Ethgw-Timestamp"
NONCE_HEADER = "X-Ethgw-Nonce"

# Open on every signed app: what a supervisor, a readiness probe or Prometheus asks.
OPEN_PATHS = frozenset({"/healthz", "/readyz", "/metrics"})

UNAUTHENTICATED_CODE = "unauthenticated_call"
BODY_TOO_LARGE_CODE = "body_too_large"

_NONCE = re.compile(r"^[A-Za-z0-9_-]{16,64}$")
_DEFAULT_PORTS = {"http": 80, "https": 443}

log = logging.getLogger("ethgw.request_auth")


class RequestKeyError(RuntimeError):
    """The request key file exists but holds no key."""


def ensure_request_key(path: Path | None = None) -> bytes:
    """The platform's request key, made (random, mode 0600) on first use, safely when several
    processes start at once (service_kit.keyfiles.ensure_random_secret)."""
    path = path if path is not None else ServiceAuthSettings().key_file
    key = ensure_random_secret(path)
    if not key:
        raise RequestKeyError(f"{path} is empty: delete it to make a new key")
    return key.encode()


def authority_of(url: str) -> str:
    """The Host header a client sends for `url`: host, and the port unless the default."""
    parts = urlsplit(url)
    host = (parts.hostname or "").lower()
    if ":" in host:
        host = f"[{host}]"
    if parts.port is None or parts.port == _DEFAULT_PORTS.get(parts.scheme):
        return host
    return f"{host}:{parts.port}"


def target_of(url: str) -> str:
    """The request target as sent: the path (as encoded) and the query, if any."""
    parts = urlsplit(url)
    path = parts.path or "/"
    return f"{path}?{parts.query}" if parts.query else path


def signature(
    key: bytes,
    *,
    method: str,
    authority: str,
    target: str,
    timestamp: str,
    nonce: str,
    body: bytes,
    caller: str,
) -> str:
    """The hex HMAC-SHA256 of one request's canonical form (one field a line)."""
    canonical = "\n".join(
        (
            method.upper(),
            authority.lower(),
            target,
            timestamp,
            nonce,
            hashlib.sha256(body).hexdigest(),
            caller,
        )
    )
    return hmac.new(key, canonical.encode(), hashlib.sha256).hexdigest()


class RequestSigner:
    """Makes the signature headers of the platform's calls to its services."""

    def __init__(self, key: bytes, clock: Callable[[], float] = time.time) -> None:
        self._key = key
        self._clock = clock

    def headers(
        self, method: str, url: str, body: bytes | None = None, caller: str | None = None
    ) -> dict[str, str]:
        """The headers to add to a request for `url` (absolute, already encoded)."""
        timestamp = f"{self._clock():.3f}"
        nonce = secrets.token_urlsafe(18)
        mac = signature(
            self._key,
            method=method,
            authority=authority_of(url),
            target=target_of(url),
            timestamp=timestamp,
            nonce=nonce,
            body=body or b"",
            caller=caller or "",
        )
        return {TIMESTAMP_HEADER: timestamp, NONCE_HEADER: nonce, SIGNATURE_HEADER: mac}


class SigningAuth(httpx.Auth):
    """httpx's hook for a client whose every request is signed (the manager's callers)."""

    requires_request_body = True

    def __init__(self, signer: RequestSigner) -> None:
        self._signer = signer

    def auth_flow(self, request: httpx.Request) -> Generator[httpx.Request, httpx.Response, None]:
        request.headers.update(
            self._signer.headers(
                request.method,
                str(request.url),
                request.content,
                request.headers.get(CALLER_HEADER),
            )
        )
        yield request


def signing_auth(key: bytes | None = None) -> SigningAuth:
    """The httpx auth of a platform tool: signs with this state folder's request key."""
    return SigningAuth(RequestSigner(key if key is not None else ensure_request_key()))


# -- the check ---------------------------------------------------------------------------


class RefusedError(Exception):
    """A request the check does not take: its status, the header at fault and why."""

    def __init__(self, reason: str, field: str, status: int = 401) -> None:
        super().__init__(reason)
        self.reason = reason
        self.field = field
        self.status = status


class NonceWindow:
    """The nonces seen in the last `window_s`, so a request is taken at most once."""

    def __init__(self, window_s: float) -> None:
        self._window_s = window_s
        self._seen: set[str] = set()
        self._expiries: collections.deque[tuple[float, str]] = collections.deque()

    def first_use(self, nonce: str, now: float) -> bool:
        """Whether `nonce` is new within the window; it is remembered either way."""
        while self._expiries and self._expiries[0][0] <= now:
            self._seen.discard(self._expiries.popleft()[1])
        if nonce in self._seen:
            return False
        self._seen.add(nonce)
        self._expiries.append((now + self._window_s, nonce))
        return True

    def __len__(self) -> int:
        return len(self._seen)


class SignedRequestsOnly:
    """ASGI middleware: an HTTP request off the open paths must carry a valid signature.

    The cheap checks (headers present, timestamp fresh) come before the body is read, and
    the body is read up to `max_body_bytes`, so an unsigned caller costs little. A nonce is
    remembered only once its signature checked, so nobody unsigned can fill the window.
    """

    def __init__(
        self,
        app: ASGIApp,
        key: bytes,
        *,
        open_paths: Collection[str] = OPEN_PATHS,
        settings: ServiceAuthSettings | None = None,
        clock: Callable[[], float] = time.time,
    ) -> None:
        self._app = app
        self._key = key
        self._open_paths = frozenset(open_paths)
        self._settings = settings or ServiceAuthSettings()
        self._clock = clock
        # Remembered for twice the age limit: a timestamp may be that far from its twin's.
        self._nonces = NonceWindow(2 * self._settings.max_age_s)

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        if scope["type"] != "http" or scope["path"] in self._open_paths:
            await self._app(scope, receive, send)
            return
        try:
            body = await self._verified_body(scope, receive)
        except RefusedError as refused:
            log.warning(
                "request refused method=%s path=%s reason=%s",
                scope["method"],
                scope["path"],
                refused.reason,
            )
            await _refuse(send, refused)
            return
        await self._app(scope, _replay(body, receive), send)

    async def _verified_body(self, scope: Scope, receive: Receive) -> bytes:
        headers = _headers(scope)
        mac = _required(headers, SIGNATURE_HEADER)
        timestamp = _required(headers, TIMESTAMP_HEADER)
        nonce = _required(headers, NONCE_HEADER)
        now = self._clock()
        self._check_fresh(timestamp, now)
        if not _NONCE.match(nonce):
            raise RefusedError("the nonce is malformed", NONCE_HEADER)
        body = await _read_body(receive, self._settings.max_body_bytes)
        expected = signature(
            self._key,
            method=scope["method"],
            authority=headers.get("host", ""),
            target=_target(scope),
            timestamp=timestamp,
            nonce=nonce,
            body=body,
            caller=headers.get(CALLER_HEADER.lower(), ""),
        )
        if not hmac.compare_digest(expected, mac.lower()):
            raise RefusedError("the signature does not match the request", SIGNATURE_HEADER)
        if not self._nonces.first_use(nonce, now):
            raise RefusedError("the request was already taken (replayed nonce)", NONCE_HEADER)
        return body

    def _check_fresh(self, timestamp: str, now: float) -> None:
        try:
            sent = float(timestamp)
        except ValueError:
            raise RefusedError("the timestamp is not a number", TIMESTAMP_HEADER) from None
        if not abs(now - sent) <= self._settings.max_age_s:  # also refuses nan
            raise RefusedError(
                f"the timestamp is stale: more than {self._settings.max_age_s:.0f} s from now",
                TIMESTAMP_HEADER,
            )


def _headers(scope: Scope) -> dict[str, str]:
    pairs: Iterable[tuple[bytes, bytes]] = scope.get("headers", [])
    return {name.decode("latin-1").lower(): value.decode("latin-1") for name, value in pairs}


def _required(headers: dict[str, str], name: str) -> str:
    value = headers.get(name.lower())
    if not value:
        raise RefusedError(f"the request is not signed: {name} is missing", name)
    return value


def _target(scope: Scope) -> str:
    raw: bytes = scope.get("raw_path") or scope["path"].encode()
    query: bytes = scope.get("query_string", b"")
    target = raw.decode("latin-1")
    return f"{target}?{query.decode('latin-1')}" if query else target


async def _read_body(receive: Receive, limit: int) -> bytes:
    chunks: list[bytes] = []
    size = 0
    while True:
        message = await receive()
        if message["type"] != "http.request":
            raise RefusedError("the client went away before its body was read", "body", 400)
        chunk = message.get("body", b"")
        size += len(chunk)
        if size > limit:
            raise RefusedError(f"the body is over {limit} bytes", "body", 413)
        chunks.append(chunk)
        if not message.get("more_body", False):
            return b"".join(chunks)


def _replay(body: bytes, receive: Receive) -> Receive:
    """A receive that gives the body already read, then whatever the client sends next."""
    sent = False

    async def replay() -> Message:
        nonlocal sent
        if not sent:
            sent = True
            return {"type": "http.request", "body": body, "more_body": False}
        return await receive()

    return replay


async def _refuse(send: Send, refused: RefusedError) -> None:
    code = BODY_TOO_LARGE_CODE if refused.status == 413 else UNAUTHENTICATED_CODE
    envelope = error_envelope(refused.status, code, refused.reason, field=refused.field)
    content = json.dumps(envelope.model_dump(mode="json")).encode()
    await send(
        {
            "type": "http.response.start",
            "status": refused.status,
            "headers": [
                (b"content-type", b"application/json"),
                (b"content-length", str(len(content)).encode()),
            ],
        }
    )
    await send({"type": "http.response.body", "body": content})
