"""The library the read and write services are built from: each request becomes a
task on Kafka (TaskClient), and the answer is its result in the thesis's envelope.

A service calls `create_service_app(kind, settings, routers)` with its own routes: its
operations' routes (`build_router(endpoints_of(kind), run_endpoint)`) and its JSON-RPC
methods (`jsonrpc_router(methods)`). The app adds what every service has: the Kafka
clients of its lifespan, registration with the gateway, GET /tasks/{id}, /healthz,
/readyz, /metrics and the error envelopes.
"""

from consumer_service.answers import (
    envelope_response,
    request_id_of,
    result_envelope,
    result_response,
)
from consumer_service.app import create_service_app
from consumer_service.config import ConsumerServiceSettings
from consumer_service.errors import add_error_handlers
from consumer_service.jsonrpc import JsonRpcMethods, jsonrpc_router
from consumer_service.result_store import RESULT_RETENTION_S, ResultStore
from consumer_service.routes import run_endpoint
from consumer_service.schemas import JsonRpcCall
from consumer_service.state import NodeReports, ServiceState, TaskRunner
from consumer_service.task_client import TaskClient

__all__ = [
    "RESULT_RETENTION_S",
    "ConsumerServiceSettings",
    "JsonRpcCall",
    "JsonRpcMethods",
    "NodeReports",
    "ResultStore",
    "ServiceState",
    "TaskClient",
    "TaskRunner",
    "add_error_handlers",
    "create_service_app",
    "envelope_response",
    "jsonrpc_router",
    "request_id_of",
    "result_envelope",
    "result_response",
    "run_endpoint",
]
