"""What both services share (consumer_service), in this process with fakes."""

from __future__ import annotations

import httpx
from fastapi import FastAPI

from consumer_service import add_error_handlers, result_envelope
from ethgw_wire.messages import ErrorInfo, ResultMessage, TaskStatus
from ethgw_wire.node_reports import Lifecycle
from read_service.app import create_app
from read_service.config import ReadServiceSettings
from tests.services.fakes import FakeNodes, FakeTasks, node_report, serving

TASK_ID = "ab" * 16


def _result(
    status: TaskStatus, data: object = None, error: ErrorInfo | None = None
) -> ResultMessage:
    return ResultMessage(
        task_id=TASK_ID, operation="eth.send", status=status, data=data, error=error
    )


def test_a_task_still_running_is_202_with_where_to_find_it() -> None:
    """An ACCEPTED status answers 202 naming /tasks/{id}."""
    envelope = result_envelope(_result(TaskStatus.ACCEPTED), TASK_ID, "r")
    assert envelope.status == 202
    assert envelope.task_id == TASK_ID
    assert f"/api/v1/tasks/{TASK_ID}" in envelope.message


def test_a_failure_without_error_details_is_a_500_internal() -> None:
    """A FAILED result that says nothing answers 500 internal, not retriable."""
    envelope = result_envelope(_result(TaskStatus.FAILED), TASK_ID, "r")
    assert envelope.status == 500
    assert envelope.error is not None
    assert envelope.error.code == "internal"
    assert envelope.error.retriable is False


def test_a_failure_names_its_field() -> None:
    """A failure with a field keeps it in the envelope's error."""
    error = ErrorInfo(code="invalid_params", message="bad", field="to")
    envelope = result_envelope(_result(TaskStatus.FAILED, error=error), TASK_ID, "r")
    assert envelope.status == 422
    assert envelope.error is not None
    assert envelope.error.field == "to"


async def test_a_known_task_answers_its_result() -> None:
    """GET /tasks/{id} answers the result the instance mirrors."""
    tasks = FakeTasks(known={TASK_ID: _result(TaskStatus.SUCCEEDED, data={"n": 1})})
    async with serving(create_app(ReadServiceSettings()), tasks) as client:
        response = await client.get(f"/api/v1/tasks/{TASK_ID}")
    assert response.status_code == 200
    assert response.json()["data"] == {"n": 1}


async def test_an_unknown_task_is_404() -> None:
    """GET /tasks/{id} of a task nobody submitted answers 404 not_found."""
    async with serving(create_app(ReadServiceSettings()), FakeTasks()) as client:
        response = await client.get(f"/api/v1/tasks/{TASK_ID}")
    assert response.status_code == 404
    assert response.json()["error"]["code"] == "not_found"


async def test_a_malformed_task_id_is_422_naming_it() -> None:
    """GET /tasks/{id} with an id that is not 32 hex digits answers 422 naming task_id."""
    async with serving(create_app(ReadServiceSettings()), FakeTasks()) as client:
        response = await client.get("/api/v1/tasks/not-an-id")
    assert response.status_code == 422
    assert response.json()["error"]["field"] == "task_id"


async def test_not_ready_without_a_routable_node() -> None:
    """/readyz is 503 when the only nodes are cordoned or their reports are stale."""
    nodes = FakeNodes(
        [
            node_report("n1", Lifecycle.CORDONED),
            node_report("n2", Lifecycle.UP, age_s=3600),
        ]
    )
    async with serving(create_app(ReadServiceSettings()), FakeTasks(), nodes) as client:
        response = await client.get("/readyz")
    assert response.status_code == 503
    assert response.json() == {"ready": False, "routable_nodes": []}


async def test_ready_with_a_fresh_routable_node() -> None:
    """/readyz is 200 and names the node when one is up and freshly reported."""
    nodes = FakeNodes([node_report("n1", Lifecycle.UP)])
    async with serving(create_app(ReadServiceSettings()), FakeTasks(), nodes) as client:
        response = await client.get("/readyz")
    assert response.status_code == 200
    assert response.json()["routable_nodes"] == ["n1"]


async def test_error_handlers_give_any_app_the_envelope_of_a_404() -> None:
    """add_error_handlers on a bare app (as the monolith uses it): 404 in the envelope."""
    app = FastAPI()
    add_error_handlers(app)
    transport = httpx.ASGITransport(app)
    async with httpx.AsyncClient(transport=transport, base_url="http://app") as client:
        response = await client.get("/nowhere", headers={"X-Request-ID": "r-9"})
    assert response.status_code == 404
    assert response.json()["error"]["code"] == "not_found"
    assert response.json()["request_id"] == "r-9"
    assert response.headers["X-Request-ID"] == "r-9"
