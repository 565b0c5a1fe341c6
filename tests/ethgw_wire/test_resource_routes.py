"""Resource-style routes built from the operations' aliases: the path carries one
parameter, the query or body the rest, and the operation's schema validates them all."""

from __future__ import annotations

from typing import Any

import httpx
from fastapi import FastAPI, Request, Response
from fastapi.responses import JSONResponse

from consumer_service.errors import add_error_handlers
from ethgw_wire.http_api import ENDPOINTS, Endpoint, build_router
from ethgw_wire.operations import Params

ADDRESS = "0x" + "ab" * 20


async def _echo(endpoint: Endpoint, params: Params, request: Request) -> Response:
    """The validated parameters and the operation they reached."""
    body = {"operation": endpoint.operation_name, **params.model_dump(mode="json", by_alias=True)}
    return JSONResponse(body)


async def _call(method: str, path: str, **kwargs: Any) -> httpx.Response:
    app = FastAPI()
    app.include_router(build_router(ENDPOINTS, _echo))
    add_error_handlers(app)
    transport = httpx.ASGITransport(app=app)
    async with httpx.AsyncClient(transport=transport, base_url="http://api/api/v1") as client:
        return await client.request(method, path, **kwargs)


async def test_unlock_takes_the_address_from_the_path_and_the_password_from_the_body() -> None:
    """POST /accounts/{address}/unlock validates as account.unlock's parameters."""
    answer = await _call("POST", f"/accounts/{ADDRESS}/unlock", json={"password": "12345678"})
    assert answer.json() == {
        "operation": "account.unlock",
        "address": "0xABaBaBaBABabABabAbAbABAbABabababaBaBABaB",
        "password": "12345678",
        "durationS": 300,
    }


async def test_a_bad_path_value_is_422_naming_it() -> None:
    """A transaction hash in the path that is not 32 bytes is refused naming txHash."""
    answer = await _call("GET", "/transactions/0xnothex")
    assert answer.status_code == 422
    assert answer.json()["error"]["field"] == "txHash"


async def test_purchases_take_the_project_from_the_path_and_the_page_from_the_query() -> None:
    """GET /projects/{projectId}/purchases?offset=&limit= reaches projects.purchases."""
    answer = await _call("GET", "/projects/5/purchases", params={"offset": 4, "limit": 2})
    assert answer.json() == {
        "operation": "projects.purchases",
        "projectId": 5,
        "offset": 4,
        "limit": 2,
    }


async def test_a_block_id_routes_by_its_form() -> None:
    """/blocks/{id} is block.by_number for digits and block.by_hash for a 32-byte hash."""
    by_number = (await _call("GET", "/blocks/12")).json()
    by_hash = (await _call("GET", "/blocks/0x" + "AB" * 32)).json()
    assert by_number == {"operation": "block.by_number", "blockNumber": 12}
    assert by_hash == {"operation": "block.by_hash", "blockHash": "0x" + "ab" * 32}
