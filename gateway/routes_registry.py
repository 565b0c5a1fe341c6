"""The registry endpoints the service instances call (with the registry token, checked
by the middleware). Not part of the public OpenAPI document."""

from __future__ import annotations

import logging
import time

from fastapi import APIRouter, Response

from ethgw_wire.http_api import Envelope
from ethgw_wire.registration import REGISTRY_PATH, InstanceId, InstanceRegistration, RegistrationAck
from gateway.errors import UnknownInstanceError
from gateway.instance_registry import Instance
from gateway.state import RequestIdDep, StateDep

log = logging.getLogger("ethgw.gateway")

router = APIRouter(prefix=REGISTRY_PATH, tags=["registry"], include_in_schema=False)


def _ack(instance: Instance, ttl_s: float, request_id: str, status: int = 200) -> Envelope:
    ack = RegistrationAck(
        instance_id=instance.instance_id,
        kind=instance.kind,
        url=instance.url,
        ttl_s=ttl_s,
        heartbeat_s=ttl_s / 3,
    )
    return Envelope(status=status, message="registered", data=ack, request_id=request_id)


@router.post("", status_code=201, response_model=Envelope)
async def register(
    registration: InstanceRegistration, state: StateDep, request_id: RequestIdDep
) -> Envelope:
    known = state.registry.get(registration.instance_id)
    instance = state.registry.register(registration, time.monotonic())
    if known is None or known.url != instance.url:
        log.info(
            "instance registered id=%s kind=%s url=%s",
            instance.instance_id,
            instance.kind,
            instance.url,
        )
    return _ack(instance, state.registry.ttl_s, request_id, 201)


@router.put("/{instance_id}", response_model=Envelope)
async def heartbeat(instance_id: InstanceId, state: StateDep, request_id: RequestIdDep) -> Envelope:
    instance = state.registry.heartbeat(instance_id, time.monotonic())
    if instance is None:
        raise UnknownInstanceError(f"no instance {instance_id} is registered: register again")
    return _ack(instance, state.registry.ttl_s, request_id)


@router.delete("/{instance_id}", status_code=204)
async def deregister(instance_id: InstanceId, state: StateDep) -> Response:
    instance = state.registry.deregister(instance_id)
    if instance is None:
        raise UnknownInstanceError(f"no instance {instance_id} is registered")
    log.info("instance deregistered id=%s kind=%s", instance.instance_id, instance.kind)
    return Response(status_code=204)
