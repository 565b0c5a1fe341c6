"""The kernel of the read and write services: each request becomes a task on
Kafka, and the service answers with its result in the thesis's envelope.

`create_task_service(kind, settings)` builds the FastAPI app; read_service and
write_service differ only in their kind (which routes of ethgw_wire.http_api they
serve, which JSON-RPC methods they take) and their settings.
"""

from __future__ import annotations

import logging
import time
import uuid
from collections.abc import AsyncIterator
from contextlib import AsyncExitStack, asynccontextmanager
from dataclasses import dataclass
from typing import Any

from fastapi import FastAPI, Request, Response
from fastapi.exceptions import RequestValidationError
from fastapi.responses import JSONResponse
from prometheus_client import CONTENT_TYPE_LATEST, Counter, Histogram, generate_latest
from pydantic import BaseModel, Field, ValidationError
from pydantic_settings import BaseSettings
from starlette.exceptions import HTTPException as StarletteHTTPException

from consumer_service.task_client import TaskClient
from ethgw_wire.http_api import (
    API_PREFIX,
    REQUEST_ID_HEADER,
    Endpoint,
    Envelope,
    Service,
    build_router,
    endpoints_of,
    error_envelope,
    http_status_of,
)
from ethgw_wire.kafka import kafka_producer
from ethgw_wire.messages import ResultMessage, TaskMessage, TaskStatus
from ethgw_wire.node_reports import NodeReport
from ethgw_wire.operations import RPC_READ_METHODS, RPC_SEND_RAW, Params, new_task
from ethgw_wire.registration import InstanceRegistration, RegistryClient, ensure_registry_token
from ethgw_wire.settings import KafkaSettings
from ethgw_wire.topic_mirror import CompactedTable
from service_kit.paths import default_state_dir

log = logging.getLogger("ethgw.service")

REQUESTS = Counter("ethgw_service_requests_total", "Requests answered", ["route", "status"])
LATENCY = Histogram(
    "ethgw_service_request_seconds",
    "From request to answer",
    ["route"],
    buckets=(0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1, 2.5, 5, 10, 30),
)


class TaskServiceSettings(BaseSettings):
    """Common to both services; each service subclasses it with its env prefix."""

    instance_id: str = Field(default_factory=lambda: f"svc-{uuid.uuid4().hex[:8]}")
    http_host: str = "127.0.0.1"
    http_port: int = 8100
    public_url: str | None = None  # how the gateway reaches this instance
    wait_timeout_s: float = Field(default=30.0, gt=0)  # then 202 with the task id
    gateway_url: str | None = None  # None: do not register
    registry_ttl_s: float = 10.0
    node_stale_s: float = 15.0

    @property
    def url(self) -> str:
        return self.public_url or f"http://{self.http_host}:{self.http_port}"


@dataclass
class ServiceState:
    kind: Service
    settings: TaskServiceSettings
    tasks: TaskClient
    nodes: CompactedTable[NodeReport]


# -- answers ----------------------------------------------------------------------


def answer(result: ResultMessage | None, task_id: str, request_id: str) -> JSONResponse:
    """A task's result (or its absence after the wait) as an envelope response."""
    if result is None or not result.done:
        envelope = Envelope(
            status=202,
            message=f"accepted: the result will be at {API_PREFIX}/tasks/{task_id}",
            task_id=task_id,
            request_id=request_id,
        )
    elif result.status is TaskStatus.SUCCEEDED:
        envelope = Envelope(
            status=200, message="ok", data=result.data, task_id=task_id, request_id=request_id
        )
    else:
        error = result.error
        code = error.code if error else "internal"
        envelope = error_envelope(
            http_status_of(code),
            code,
            error.message if error else "the task failed",
            field=error.field if error else None,
            request_id=request_id,
            task_id=task_id,
            retriable=error.retriable if error else False,
        )
    return _json(envelope, request_id)


def _json(envelope: Envelope, request_id: str | None) -> JSONResponse:
    headers = {REQUEST_ID_HEADER: request_id} if request_id else None
    return JSONResponse(
        envelope.model_dump(mode="json"), status_code=envelope.status, headers=headers
    )


def request_id_of(request: Request) -> str:
    given = request.headers.get(REQUEST_ID_HEADER, "")
    return given[:64] if given else uuid.uuid4().hex


def _state(request: Request) -> ServiceState:
    state: ServiceState = request.app.state.service
    return state


# -- routes -----------------------------------------------------------------------


async def _run_endpoint(endpoint: Endpoint, params: Params, request: Request) -> Response:
    state = _state(request)
    request_id = request_id_of(request)
    task = TaskMessage(
        operation=endpoint.operation_name,
        params=params.model_dump(mode="json", by_alias=True, exclude_none=True),
        account=endpoint.operation.ordering_key(params),
        request_id=request_id,
    )
    started = time.perf_counter()
    result = await state.tasks.run(task, state.settings.wait_timeout_s)
    response = answer(result, task.task_id, request_id)
    LATENCY.labels(endpoint.operation_name).observe(time.perf_counter() - started)
    REQUESTS.labels(endpoint.operation_name, str(response.status_code)).inc()
    return response


class TaskIdPath(BaseModel):
    task_id: str = Field(pattern=r"^[0-9a-f]{32}$")


class JsonRpcCall(BaseModel):
    """One JSON-RPC 2.0 call (the gateway splits batches)."""

    jsonrpc: str = Field(pattern=r"^2\.0$")
    method: str = Field(max_length=64)
    params: list[Any] = Field(default_factory=list, max_length=16)
    id: int | str | None = None


def _rpc_error(call_id: object, code: int, message: str) -> dict[str, Any]:
    return {"jsonrpc": "2.0", "id": call_id, "error": {"code": code, "message": message}}


def _rpc_task(kind: Service, call: JsonRpcCall, request_id: str) -> TaskMessage | None:
    """The task behind a JSON-RPC call, or None when this service does not take it."""
    if kind == "read" and call.method in RPC_READ_METHODS:
        return new_task("rpc.call", {"method": call.method, "params": call.params}, request_id)
    if kind == "write" and call.method == RPC_SEND_RAW and len(call.params) == 1:
        return new_task("rpc.send_raw", {"raw_tx": call.params[0]}, request_id)
    return None


def _add_routes(app: FastAPI, kind: Service) -> None:
    app.include_router(build_router(endpoints_of(kind), _run_endpoint))

    @app.get(
        f"{API_PREFIX}/tasks/{{task_id}}",
        response_model=Envelope,
        tags=["tasks"],
        summary="A task's status and result, from any instance",
    )
    async def task_status(task_id: str, request: Request) -> JSONResponse:
        request_id = request_id_of(request)
        try:
            TaskIdPath(task_id=task_id)
        except ValidationError:
            return _json(
                error_envelope(
                    422,
                    "invalid_params",
                    "task id must be 32 hex digits",
                    field="task_id",
                    request_id=request_id,
                ),
                request_id,
            )
        known = _state(request).tasks.lookup(task_id)
        if known is None:
            return _json(
                error_envelope(
                    404, "not_found", f"no task {task_id}", field="task_id", request_id=request_id
                ),
                request_id,
            )
        return answer(known, task_id, request_id)

    @app.post(f"{API_PREFIX}/rpc", tags=["rpc"], summary="One JSON-RPC 2.0 call")
    async def rpc(call: JsonRpcCall, request: Request) -> JSONResponse:
        state = _state(request)
        task = _rpc_task(kind, call, request_id_of(request))
        if task is None:
            body = _rpc_error(call.id, -32601, f"method {call.method} is not available here")
            return JSONResponse(body)
        try:
            result = await state.tasks.run(task, state.settings.wait_timeout_s)
        except ValidationError as exc:
            return JSONResponse(_rpc_error(call.id, -32602, str(exc.errors()[0]["msg"])))
        if result is None:
            return JSONResponse(_rpc_error(call.id, -32000, f"timed out; task {task.task_id}"))
        if result.status is not TaskStatus.SUCCEEDED:
            message = result.error.message if result.error else "failed"
            return JSONResponse(_rpc_error(call.id, -32000, message))
        data = result.data
        value = data["tx_hash"] if kind == "write" and isinstance(data, dict) else data
        return JSONResponse({"jsonrpc": "2.0", "id": call.id, "result": value})


def _add_operations(app: FastAPI, kind: Service) -> None:
    @app.get("/healthz", include_in_schema=False)
    async def healthz() -> dict[str, str]:
        return {"status": "ok", "kind": kind}

    @app.get("/readyz", include_in_schema=False)
    async def readyz(request: Request) -> JSONResponse:
        """Ready when Kafka answers and some node is routable (as the manager reports)."""
        state = _state(request)
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

    @app.get("/metrics", include_in_schema=False)
    async def prometheus() -> Response:
        return Response(generate_latest(), media_type=CONTENT_TYPE_LATEST)


def _add_error_handlers(app: FastAPI) -> None:
    @app.exception_handler(RequestValidationError)
    async def invalid(request: Request, exc: RequestValidationError) -> JSONResponse:
        first = exc.errors()[0]
        location = [
            str(part)
            for part in first.get("loc", ())
            if part not in ("body", "query", "path", "params")
        ]
        field = ".".join(location) or None
        reason = f"{field}: {first.get('msg')}" if field else str(first.get("msg"))
        request_id = request_id_of(request)
        return _json(
            error_envelope(422, "invalid_params", reason, field=field, request_id=request_id),
            request_id,
        )

    @app.exception_handler(StarletteHTTPException)
    async def http_error(request: Request, exc: StarletteHTTPException) -> JSONResponse:
        request_id = request_id_of(request)
        code = "not_found" if exc.status_code == 404 else "http_error"
        return _json(
            error_envelope(exc.status_code, code, str(exc.detail), request_id=request_id),
            request_id,
        )


# -- the app ----------------------------------------------------------------------


def create_task_service(kind: Service, settings: TaskServiceSettings) -> FastAPI:
    @asynccontextmanager
    async def lifespan(app: FastAPI) -> AsyncIterator[None]:
        kafka = KafkaSettings()
        async with AsyncExitStack() as stack:
            producer = await stack.enter_async_context(kafka_producer(kafka))
            tasks = TaskClient(kafka, producer)
            await tasks.start()
            stack.push_async_callback(tasks.stop)
            nodes = CompactedTable(kafka, kafka.topic_node_states, NodeReport, producer)
            await nodes.start()
            stack.push_async_callback(nodes.stop)
            app.state.service = ServiceState(kind, settings, tasks, nodes)
            await stack.enter_async_context(_registration(kind, settings))
            log.info(
                "service started kind=%s id=%s url=%s", kind, settings.instance_id, settings.url
            )
            yield
            log.info("service stopping kind=%s id=%s", kind, settings.instance_id)

    app = FastAPI(title=f"ethgw {kind} service", lifespan=lifespan)
    _add_routes(app, kind)
    _add_operations(app, kind)
    _add_error_handlers(app)
    return app


@asynccontextmanager
async def _registration(kind: Service, settings: TaskServiceSettings) -> AsyncIterator[None]:
    """Register with the gateway and heartbeat while serving; deregister at the end."""
    if settings.gateway_url is None:
        yield
        return
    registration = InstanceRegistration(
        instance_id=settings.instance_id, kind=kind, url=settings.url
    )
    token = ensure_registry_token(default_state_dir())
    async with RegistryClient(settings.gateway_url, token, registration).running(
        settings.registry_ttl_s
    ):
        yield
