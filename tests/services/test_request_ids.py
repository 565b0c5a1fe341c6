"""A read or write instance's request id: the one the gateway forwarded, or one it makes,
is the id of its log lines, of the task it sends and of its answer."""

from __future__ import annotations

import logging

import pytest

from ethgw_wire.http_api import REQUEST_ID_HEADER
from read_service.app import create_app
from read_service.config import ReadServiceSettings
from service_kit.logs import bound_fields
from tests.services.fakes import FakeTasks, serving


def request_lines(caplog: pytest.LogCaptureFixture) -> list[dict[str, object]]:
    fields = [dict(bound_fields(r)) for r in caplog.records if r.name == "ethgw.service"]
    return [f for f in fields if f["event"] == "request"]


async def test_the_forwarded_request_id_is_on_the_line_and_the_task(
    caplog: pytest.LogCaptureFixture,
) -> None:
    """X-Request-ID r-9: the request line and the task carry r-9."""
    tasks = FakeTasks()
    with caplog.at_level(logging.DEBUG, logger="ethgw.service"):
        async with serving(create_app(ReadServiceSettings()), tasks) as client:
            response = await client.get("/api/v1/conn/blockNum", headers={REQUEST_ID_HEADER: "r-9"})
    assert response.status_code == 200
    [line] = request_lines(caplog)
    assert (line["request_id"], line["status"]) == ("r-9", 200)
    assert [task.request_id for task in tasks.ran] == ["r-9"]


async def test_without_a_request_id_one_is_made_and_used_throughout(
    caplog: pytest.LogCaptureFixture,
) -> None:
    """No X-Request-ID: the id the instance makes is the answer's, the task's and the line's."""
    tasks = FakeTasks()
    with caplog.at_level(logging.DEBUG, logger="ethgw.service"):
        async with serving(create_app(ReadServiceSettings()), tasks) as client:
            response = await client.get("/api/v1/conn/blockNum")
    made = response.json()["request_id"]
    assert made
    assert response.headers[REQUEST_ID_HEADER] == made
    [line] = request_lines(caplog)
    assert line["request_id"] == made
    assert [task.request_id for task in tasks.ran] == [made]
