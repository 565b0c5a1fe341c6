"""Signed calls between the platform's processes (ethgw_wire.request_auth): what the check
takes, what it refuses and why, on a small app wrapped as the services and the manager are."""

from __future__ import annotations

import stat
from collections.abc import AsyncIterator
from contextlib import asynccontextmanager
from pathlib import Path

import httpx
from hypothesis import given
from hypothesis import strategies as st
from starlette.applications import Starlette
from starlette.requests import Request
from starlette.responses import JSONResponse
from starlette.routing import Route

from ethgw_wire.callers import CALLER_HEADER
from ethgw_wire.request_auth import (
    NONCE_HEADER,
    SIGNATURE_HEADER,
    TIMESTAMP_HEADER,
    NonceWindow,
    RequestSigner,
    SignedRequestsOnly,
    SigningAuth,
    ensure_request_key,
)
from ethgw_wire.settings import ServiceAuthSettings

KEY = b"k" * 43
NOW = 1_800_000_000.0
BASE = "http://service:8101"


class Clock:
    def __init__(self, now: float = NOW) -> None:
        self.now = now

    def __call__(self) -> float:
        return self.now


async def echo(request: Request) -> JSONResponse:
    """What the app saw: the body and the caller header."""
    request.app.state.calls += 1
    body = (await request.body()).decode()
    return JSONResponse({"body": body, "caller": request.headers.get(CALLER_HEADER)})


def signed_app(clock: Clock, max_body_bytes: int = 4096) -> Starlette:
    app = Starlette(
        routes=[
            Route("/api/v1/thing", echo, methods=["GET", "POST"]),
            Route("/healthz", echo, methods=["GET"]),
        ]
    )
    app.state.calls = 0
    settings = ServiceAuthSettings(max_age_s=30.0, max_body_bytes=max_body_bytes)
    app.add_middleware(SignedRequestsOnly, key=KEY, settings=settings, clock=clock)
    return app


@asynccontextmanager
async def client_of(app: Starlette, key: bytes | None = KEY) -> AsyncIterator[httpx.AsyncClient]:
    """A client of the app; it signs with `key` (None: it does not sign)."""
    auth = None if key is None else SigningAuth(RequestSigner(key, clock=lambda: NOW))
    async with httpx.AsyncClient(
        transport=httpx.ASGITransport(app), base_url=BASE, auth=auth
    ) as client:
        yield client


def signed_headers(
    method: str, url: str, body: bytes = b"", caller: str | None = None
) -> dict[str, str]:
    signer = RequestSigner(KEY, clock=lambda: NOW)
    headers = signer.headers(method, url, body, caller)
    if caller is not None:
        headers[CALLER_HEADER] = caller
    return headers


def refusal(response: httpx.Response) -> tuple[int, str, str, str]:
    body = response.json()
    return response.status_code, body["error"]["code"], body["error"]["field"], body["message"]


async def test_a_signed_call_reaches_the_app_with_its_body_and_caller() -> None:
    """A call the gateway signs passes, its body and caller header intact."""
    app = signed_app(Clock())
    async with client_of(app) as client:
        response = await client.post(
            "/api/v1/thing?x=1", content=b'{"a":1}', headers={CALLER_HEADER: "user:abc123"}
        )
    assert response.status_code == 200, response.text
    assert response.json() == {"body": '{"a":1}', "caller": "user:abc123"}


async def test_an_unsigned_call_is_401_naming_the_missing_header() -> None:
    """No signature: 401 in the envelope, the app never runs."""
    app = signed_app(Clock())
    async with client_of(app, key=None) as client:
        response = await client.post("/api/v1/thing", content=b"{}")
    status, code, field, message = refusal(response)
    assert (status, code, field) == (401, "unauthenticated_call", SIGNATURE_HEADER)
    assert "not signed" in message
    assert app.state.calls == 0


async def test_a_forged_caller_header_is_401() -> None:
    """A user's signed call with the caller header changed to an admin's: 401."""
    app = signed_app(Clock())
    headers = signed_headers("GET", f"{BASE}/api/v1/thing", caller="user:abc123")
    headers[CALLER_HEADER] = "admin:abc123"
    async with client_of(app, key=None) as client:
        response = await client.get("/api/v1/thing", headers=headers)
    assert refusal(response)[:3] == (401, "unauthenticated_call", SIGNATURE_HEADER)
    assert app.state.calls == 0


async def test_a_caller_header_added_to_a_call_signed_without_one_is_401() -> None:
    """A platform call (no caller) cannot be turned into a user's by adding the header."""
    app = signed_app(Clock())
    headers = signed_headers("GET", f"{BASE}/api/v1/thing")
    headers[CALLER_HEADER] = "admin:ffff"
    async with client_of(app, key=None) as client:
        response = await client.get("/api/v1/thing", headers=headers)
    assert response.status_code == 401


async def test_another_key_is_401() -> None:
    """A signature made with any other key does not check."""
    app = signed_app(Clock())
    async with client_of(app, key=b"another key") as client:
        response = await client.get("/api/v1/thing")
    assert refusal(response)[:3] == (401, "unauthenticated_call", SIGNATURE_HEADER)


async def test_a_swapped_body_is_401() -> None:
    """The signature covers the body: another body under the same headers is refused."""
    app = signed_app(Clock())
    headers = signed_headers("POST", f"{BASE}/api/v1/thing", b'{"value":1}')
    async with client_of(app, key=None) as client:
        response = await client.post("/api/v1/thing", content=b'{"value":999}', headers=headers)
    assert response.status_code == 401
    assert app.state.calls == 0


async def test_a_call_signed_for_another_path_query_or_instance_is_401() -> None:
    """The path, the query and the Host are signed: a signature moved elsewhere fails."""
    app = signed_app(Clock())
    elsewhere = [
        ("/api/v1/thing", signed_headers("GET", f"{BASE}/api/v1/other")),
        ("/api/v1/thing?x=2", signed_headers("GET", f"{BASE}/api/v1/thing?x=1")),
        ("/api/v1/thing", signed_headers("GET", "http://service:8102/api/v1/thing")),
    ]
    async with client_of(app, key=None) as client:
        for path, headers in elsewhere:
            response = await client.get(path, headers=headers)
            assert response.status_code == 401, path


async def test_a_stale_timestamp_is_401_naming_the_timestamp() -> None:
    """A call signed more than 30 s ago (or ahead) is refused, whatever its signature."""
    for skew in (30.5, -30.5):
        app = signed_app(Clock(NOW + skew))
        async with client_of(app) as client:
            response = await client.get("/api/v1/thing")
        status, code, field, message = refusal(response)
        assert (status, code, field) == (401, "unauthenticated_call", TIMESTAMP_HEADER)
        assert "stale" in message


async def test_a_timestamp_within_the_window_passes() -> None:
    """29 s of clock difference between caller and service is still taken."""
    app = signed_app(Clock(NOW + 29.0))
    async with client_of(app) as client:
        assert (await client.get("/api/v1/thing")).status_code == 200


async def test_a_replayed_call_is_401_and_runs_once() -> None:
    """The same signed call sent twice: the second is refused as a replay."""
    app = signed_app(Clock())
    headers = signed_headers("POST", f"{BASE}/api/v1/thing", b"{}")
    async with client_of(app, key=None) as client:
        first = await client.post("/api/v1/thing", content=b"{}", headers=headers)
        again = await client.post("/api/v1/thing", content=b"{}", headers=headers)
    assert first.status_code == 200
    status, _, field, message = refusal(again)
    assert (status, field) == (401, NONCE_HEADER)
    assert "replayed" in message
    assert app.state.calls == 1


async def test_a_refused_signature_does_not_use_up_its_nonce() -> None:
    """A forger's bad signature under a nonce does not stop the genuine call with it."""
    app = signed_app(Clock())
    headers = signed_headers("GET", f"{BASE}/api/v1/thing")
    forged = {**headers, SIGNATURE_HEADER: "0" * 64}
    async with client_of(app, key=None) as client:
        assert (await client.get("/api/v1/thing", headers=forged)).status_code == 401
        assert (await client.get("/api/v1/thing", headers=headers)).status_code == 200


async def test_a_malformed_timestamp_or_nonce_is_401_naming_it() -> None:
    """Garbage in the signing headers is refused with the header named."""
    app = signed_app(Clock())
    headers = signed_headers("GET", f"{BASE}/api/v1/thing")
    cases = [
        ({**headers, TIMESTAMP_HEADER: "soon"}, TIMESTAMP_HEADER),
        ({**headers, TIMESTAMP_HEADER: "nan"}, TIMESTAMP_HEADER),
        ({**headers, NONCE_HEADER: "short"}, NONCE_HEADER),
    ]
    async with client_of(app, key=None) as client:
        for bad, field in cases:
            response = await client.get("/api/v1/thing", headers=bad)
            assert refusal(response)[:3] == (401, "unauthenticated_call", field)


async def test_a_body_over_the_limit_is_413_before_any_check_of_it() -> None:
    """A body larger than max_body_bytes is not buffered whole: 413."""
    app = signed_app(Clock(), max_body_bytes=1024)
    async with client_of(app) as client:
        response = await client.post("/api/v1/thing", content=b"x" * 2048)
    assert refusal(response)[:2] == (413, "body_too_large")


async def test_health_stays_open_without_a_signature() -> None:
    """/healthz (and /readyz, /metrics) answer unsigned callers: supervisors and Prometheus."""
    app = signed_app(Clock())
    async with client_of(app, key=None) as client:
        assert (await client.get("/healthz")).status_code == 200


def test_the_request_key_is_made_once_and_private(tmp_path: Path) -> None:
    """The key is random on first use, then the same, in a 0600 file in a 0700 folder."""
    path = tmp_path / "auth" / "request.key"
    key = ensure_request_key(path)
    assert len(key) >= 32
    assert ensure_request_key(path) == key
    assert stat.S_IMODE(path.stat().st_mode) == 0o600
    assert stat.S_IMODE(path.parent.stat().st_mode) == 0o700
    assert ensure_request_key(tmp_path / "other.key") != key


@given(st.lists(st.floats(min_value=0.0, max_value=1.0), min_size=1, max_size=50))
def test_a_nonce_is_taken_once_within_the_window_and_forgotten_after(steps: list[float]) -> None:
    """Whatever the arrival times, a nonce seen again within the window is refused, and the
    window never holds a nonce older than itself."""
    window = NonceWindow(window_s=5.0)
    now = 0.0
    seen: dict[str, float] = {}
    for index, step in enumerate(steps):
        now += step
        nonce = f"nonce-{index % 3:016d}"
        fresh = nonce not in seen or now - seen[nonce] >= 5.0
        assert window.first_use(nonce, now) is fresh
        if fresh:
            seen[nonce] = now
        assert len(window) <= 3
