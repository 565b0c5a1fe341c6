"""The routes both consumer services serve: an operation's route handler, a task's
status, and the operator's health, readiness and metrics."""

from __future__ import annotations

import time

from fastapi import APIRouter, Request, Response
from fastapi.responses import JSONResponse
from prometheus_client import CONTENT_TYPE_LATEST, Counter, Histogram, generate_latest
from pydantic import ValidationError

from consumer_service.answers import (
    InvalidCallerError,
    InvalidMinBlockError,
    caller_of,
    envelope_response,
    invalid_caller_response,
    invalid_min_block_response,
    min_block_of,
    request_id_of,
    result_response,
)
from consumer_service.schemas import TaskIdPath
from consumer_service.state import ServiceStateDep, service_state
from ethgw_wire.http_api import API_PREFIX, Endpoint, Envelope, Service, error_envelope
from ethgw_wire.messages import TaskMessage
from ethgw_wire.operations import Params

REQUESTS = Counter("ethgw_service_requests_total", "Requests answered", ["route", "status"])
LATENCY = Histogram(
    "ethgw_service_request_seconds",
    "From request to answer",
    ["route"],
    buckets=(0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1, 2.5, 5, 10, 30),
)


async def run_endpoint(endpoint: Endpoint, params: Params, request: Request) -> Response:
    """An operation's route (see build_router): its task on Kafka, then its result, or
    202 when the wait runs out."""
    state = service_state(request)
    request_id = request_id_of(request)
    try:
        caller = caller_of(request)
    except InvalidCallerError as error:
        return invalid_caller_response(error, request_id)
    try:
        reads = state.reads
        min_block = (
            None
            if endpoint.operation.is_write
            else min_block_of(request, state.chain_head(), reads.min_block_max_ahead)
        )
    except InvalidMinBlockError as error:
        return invalid_min_block_response(error, request_id)
    task = TaskMessage(
        operation=endpoint.operation_name,
        params=params.model_dump(mode="json", by_alias=True, exclude_none=True),
        account=endpoint.operation.ordering_key(params),
        request_id=request_id,
        caller=caller,
        min_block=min_block,
    )
    started = time.perf_counter()
    result = await state.tasks.run(task, state.settings.wait_timeout_s)
    response = result_response(result, task.task_id, request_id)
    LATENCY.labels(endpoint.operation_name).observe(time.perf_counter() - started)
    REQUESTS.labels(endpoint.operation_name, str(response.status_code)).inc()
    return response


task_router = APIRouter(prefix=API_PREFIX, tags=["tasks"])


@task_router.get(
    "/tasks/{task_id}",
    response_model=Envelope,
    summary="A task's status and result, from any instance",
)
async def task_status(task_id: str, request: Request, state: ServiceStateDep) -> JSONResponse:
    request_id = request_id_of(request)
    try:
        TaskIdPath(task_id=task_id)
    except ValidationError:
        refusal = error_envelope(
            422,
            "invalid_params",
            "task id must be 32 hex digits",
            field="task_id",
            request_id=request_id,
        )
        return envelope_response(refusal, request_id)
    known = await state.tasks.lookup(task_id)
    if known is None:
        unknown = error_envelope(
            404, "not_found", f"no task {task_id}", field="task_id", request_id=request_id
        )
        return envelope_response(unknown, request_id)
    return result_response(known, task_id, request_id)


def operator_router(kind: Service) -> APIRouter:
    """/healthz (naming the kind), /readyz and /metrics; out of the OpenAPI document."""
    router = APIRouter(include_in_schema=False)

    @router.get("/healthz")
    async def healthz() -> dict[str, str]:
        return {"status": "ok", "kind": kind}

    router.add_api_route("/readyz", readyz, methods=["GET"])
    router.add_api_route("/metrics", prometheus, methods=["GET"])
    return router


async def readyz(state: ServiceStateDep) -> JSONResponse:
    """Ready when Kafka answers and some node is routable (as the manager reports)."""
    now = time.time()
    routable = [
        node_id
        for node_id, report in state.nodes.items()
        if report.routable and now - report.sampled_at <= state.settings.node_stale_s
    ]
    ready = bool(routable)
    return JSONResponse(
        {"ready": ready, "routable_nodes": routable}, status_code=200 if ready else 503
    )


async def prometheus() -> Response:
    return Response(generate_latest(), media_type=CONTENT_TYPE_LATEST)
