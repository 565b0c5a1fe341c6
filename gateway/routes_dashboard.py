"""The operator's dashboard: a static page (no data, no key: public) and its one data
endpoint under /admin (admin key, like every operator endpoint).

The page asks for the admin key, keeps it in the tab's sessionStorage and sends it in the
X-API-Key header of its calls; the key never travels in a URL or a cookie, so it never
lands in an access log or goes along with a request the page did not make.
"""

from __future__ import annotations

from importlib.resources import files
from typing import Annotated

from fastapi import APIRouter, Path
from fastapi.responses import Response

from ethgw_wire.http_api import Envelope, error_answers_doc
from gateway.dashboard import dashboard_view
from gateway.errors import ADMIN_ANSWERS
from gateway.state import RequestIdDep, StateDep

DASHBOARD_PATH = "/dashboard"
ASSET_PATH = "/dashboard/{asset}"

_ASSET_TYPES = {
    "dashboard.js": "text/javascript; charset=utf-8",
    "dashboard.css": "text/css; charset=utf-8",
}
# The page runs only its own script and talks only to its own origin: an injected value
# (a node id, an event detail) cannot run as code, and the key cannot be sent elsewhere.
_PAGE_HEADERS = {
    "Content-Security-Policy": (
        "default-src 'none'; script-src 'self'; style-src 'self'; connect-src 'self'; "
        "img-src 'self' data:; base-uri 'none'; form-action 'none'; frame-ancestors 'none'"
    ),
    "X-Content-Type-Options": "nosniff",
    "Referrer-Policy": "no-referrer",
    "Cache-Control": "no-cache",
}

page_router = APIRouter(include_in_schema=False)
data_router = APIRouter(prefix="/admin", tags=["operator"])

AssetName = Annotated[str, Path(pattern=r"^dashboard\.(js|css)$")]


# Package data (pyproject's package-data), a few kilobytes, read at import: a file read in
# the routes would block the event loop.
_ASSETS = {
    name: files("gateway").joinpath("dashboard", name).read_bytes()
    for name in ("index.html", *_ASSET_TYPES)
}


@page_router.get(DASHBOARD_PATH)
async def page() -> Response:
    """The dashboard's HTML shell."""
    return Response(_ASSETS["index.html"], media_type="text/html", headers=_PAGE_HEADERS)


@page_router.get(ASSET_PATH)
async def asset(asset: AssetName) -> Response:
    """The page's script and style sheet."""
    return Response(_ASSETS[asset], media_type=_ASSET_TYPES[asset], headers=_PAGE_HEADERS)


@data_router.get(
    "/dashboard",
    response_model=Envelope,
    response_model_exclude_none=True,
    responses=error_answers_doc(ADMIN_ANSWERS),
)
async def dashboard_data(state: StateDep, request_id: RequestIdDep) -> Envelope:
    """Everything the dashboard draws: the cluster (zones, distances, life cycles), LBH over
    the recent ticks with the paused periods, recent events (restarts, cordons, pauses), the
    gateway's request rate and latency, and the providers' lag on the task topics."""
    view = await dashboard_view(state)
    return Envelope(status=200, message="dashboard", data=view, request_id=request_id)
