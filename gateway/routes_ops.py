"""Health, readiness and Prometheus metrics (no API key: probes and scrapers call them)."""

from __future__ import annotations

import time

from fastapi import APIRouter, Request, Response
from fastapi.responses import JSONResponse
from prometheus_client import CONTENT_TYPE_LATEST, REGISTRY, generate_latest
from prometheus_client.registry import CollectorRegistry

from ethgw_wire.http_api import Envelope, Service
from gateway.state import RequestIdDep, StateDep

router = APIRouter(tags=["ops"])


@router.get("/healthz", response_model=Envelope)
async def healthz(request_id: RequestIdDep) -> Envelope:
    """200 while the gateway process serves."""
    return Envelope(status=200, message="ok", request_id=request_id)


@router.get("/readyz", response_model=Envelope, responses={503: {"model": Envelope}})
async def readyz(state: StateDep, request_id: RequestIdDep) -> Response:
    """200 when at least one read and one write instance are registered and healthy."""
    now = time.monotonic()
    kinds: tuple[Service, ...] = ("read", "write")
    healthy = {kind: len(state.registry.healthy(kind, now)) for kind in kinds}
    ready = all(healthy.values())
    status = 200 if ready else 503
    missing = [kind for kind, count in healthy.items() if not count]
    envelope = Envelope(
        status=status,
        message="ready" if ready else f"no healthy {' or '.join(missing)} instance",
        data={"healthy_instances": healthy},
        request_id=request_id,
    )
    return JSONResponse(envelope.model_dump(mode="json", exclude_none=True), status_code=status)


@router.get("/metrics", response_class=Response)
async def metrics(request: Request, state: StateDep) -> Response:
    """Prometheus text format: the process-wide counters plus this app's registry view."""
    # A scrape keeps the Kafka lag gauge fresh without an open dashboard: it starts one
    # measurement in the background when the last is stale, never waiting for the broker,
    # so the gauge is at most one scrape interval old.
    state.lag_probe.latest()
    app_registry: CollectorRegistry = request.app.state.metrics_registry
    body = generate_latest(REGISTRY) + generate_latest(app_registry)
    return Response(body, media_type=CONTENT_TYPE_LATEST)
