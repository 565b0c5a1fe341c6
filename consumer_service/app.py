"""The app both consumer services are: Kafka clients opened for its lifespan, its
registration with the gateway, the shared routes and the error envelopes. A service
gives its kind, its settings and its own routes."""

from __future__ import annotations

import logging
from collections.abc import AsyncIterator, Sequence
from contextlib import AsyncExitStack, asynccontextmanager

from fastapi import APIRouter, FastAPI

from consumer_service.config import ConsumerServiceSettings
from consumer_service.errors import add_error_handlers
from consumer_service.routes import operator_router, task_router
from consumer_service.state import ServiceState
from consumer_service.task_client import TaskClient
from ethgw_wire.http_api import Service
from ethgw_wire.kafka import kafka_producer
from ethgw_wire.node_reports import NodeReport
from ethgw_wire.registration import InstanceRegistration, RegistryClient, ensure_registry_token
from ethgw_wire.request_auth import SignedRequestsOnly, ensure_request_key
from ethgw_wire.settings import KafkaSettings
from ethgw_wire.topic_mirror import CompactedTable
from service_kit.paths import default_state_dir

log = logging.getLogger("ethgw.service")


def create_service_app(
    kind: Service, settings: ConsumerServiceSettings, routers: Sequence[APIRouter]
) -> FastAPI:
    """The service's app: its own routers first, then the task status route, the
    operator's routes and the error envelopes; only signed calls (the gateway's) pass,
    but for the operator's health, readiness and metrics."""

    @asynccontextmanager
    async def lifespan(app: FastAPI) -> AsyncIterator[None]:
        async with _service_state(settings) as state:
            app.state.service = state
            async with _registration(kind, settings):
                log.info(
                    "service started kind=%s id=%s url=%s", kind, settings.instance_id, settings.url
                )
                yield
                log.info("service stopping kind=%s id=%s", kind, settings.instance_id)

    app = FastAPI(title=f"ethgw {kind} service", lifespan=lifespan)
    for router in routers:
        app.include_router(router)
    app.include_router(task_router)
    app.include_router(operator_router(kind))
    add_error_handlers(app)
    app.add_middleware(SignedRequestsOnly, key=ensure_request_key())
    return app


@asynccontextmanager
async def _service_state(settings: ConsumerServiceSettings) -> AsyncIterator[ServiceState]:
    """The Kafka clients an instance needs, started in order and stopped in reverse."""
    kafka = KafkaSettings()
    async with AsyncExitStack() as stack:
        producer = await stack.enter_async_context(kafka_producer(kafka))
        tasks = TaskClient(kafka, producer, instance_id=settings.instance_id)
        await tasks.start()
        stack.push_async_callback(tasks.stop)
        nodes = CompactedTable(kafka, kafka.topic_node_states, NodeReport, producer)
        await nodes.start()
        stack.push_async_callback(nodes.stop)
        yield ServiceState(settings, tasks, nodes)


@asynccontextmanager
async def _registration(kind: Service, settings: ConsumerServiceSettings) -> AsyncIterator[None]:
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
