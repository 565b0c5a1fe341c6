"""Operator endpoints (admin keys only): the cluster view and node and mining actions,
proxied to the cluster manager; and the registry of service instances."""

from __future__ import annotations

import logging
import time
from typing import Annotated, Any, Literal

from fastapi import APIRouter, Path

from ethgw_wire.http_api import Envelope, error_answers_doc
from gateway.errors import (
    ADMIN_ANSWERS,
    MANAGER_ANSWERS,
    MINING_ANSWERS,
    NODE_ACTION_ANSWERS,
    ManagerFailedError,
)
from gateway.manager_client import MiningAction, NodeAction
from gateway.schemas import ClusterView, InstanceView
from gateway.state import CallerDep, RequestIdDep, StateDep

log = logging.getLogger("ethgw.gateway")

router = APIRouter(prefix="/admin", tags=["operator"])

NodeId = Annotated[
    str, Path(pattern=r"^[A-Za-z0-9][A-Za-z0-9_.-]{0,63}$", description="e.g. node-2")
]


def _ok(message: str, data: Any, request_id: str) -> Envelope:
    return Envelope(status=200, message=message, data=data, request_id=request_id)


@router.get(
    "/cluster",
    response_model=Envelope,
    response_model_exclude_none=True,
    responses=error_answers_doc(MANAGER_ANSWERS),
)
async def cluster(state: StateDep, request_id: RequestIdDep) -> Envelope:
    """Per node: zone, distance, CPU, memory, in-flight (when reported), status; LBH and
    Dis_ave, as of the cluster manager's last tick."""
    snapshot = await state.manager.snapshot()
    try:
        view = ClusterView.from_snapshot(snapshot)
    except ValueError as error:
        log.warning("manager snapshot unreadable error=%s", str(error).splitlines()[0])
        raise ManagerFailedError("the cluster manager's snapshot has an unknown shape") from None
    return _ok("cluster", view.model_dump(mode="json"), request_id)


async def _node_action(
    state: StateDep, caller: CallerDep, request_id: str, node_id: str, action: NodeAction
) -> Envelope:
    log.info(
        "operator action=%s node=%s key_id=%s request_id=%s",
        action,
        node_id,
        caller.key_id if caller else None,
        request_id,
    )
    data = await state.manager.node_action(node_id, action)
    return _ok(f"{action} {node_id}: done", data, request_id)


@router.post(
    "/nodes/{node_id}/restart",
    response_model=Envelope,
    responses=error_answers_doc(NODE_ACTION_ANSWERS),
)
async def restart_node(
    node_id: NodeId, state: StateDep, caller: CallerDep, request_id: RequestIdDep
) -> Envelope:
    """Drain the node, restart it and let it resync (through the cluster manager)."""
    return await _node_action(state, caller, request_id, node_id, "restart")


@router.post(
    "/nodes/{node_id}/cordon",
    response_model=Envelope,
    responses=error_answers_doc(NODE_ACTION_ANSWERS),
)
async def cordon_node(
    node_id: NodeId, state: StateDep, caller: CallerDep, request_id: RequestIdDep
) -> Envelope:
    """Take the node out of routing without restarting it."""
    return await _node_action(state, caller, request_id, node_id, "cordon")


@router.post(
    "/nodes/{node_id}/uncordon",
    response_model=Envelope,
    responses=error_answers_doc(NODE_ACTION_ANSWERS),
)
async def uncordon_node(
    node_id: NodeId, state: StateDep, caller: CallerDep, request_id: RequestIdDep
) -> Envelope:
    """Return the node to routing."""
    return await _node_action(state, caller, request_id, node_id, "uncordon")


@router.post(
    "/mining/{action}", response_model=Envelope, responses=error_answers_doc(MINING_ANSWERS)
)
async def mining(
    action: Literal["start", "stop"], state: StateDep, caller: CallerDep, request_id: RequestIdDep
) -> Envelope:
    """Start or stop sealing blocks (through the cluster manager)."""
    chosen: MiningAction = action
    log.info(
        "operator action=mining_%s key_id=%s request_id=%s",
        action,
        caller.key_id if caller else None,
        request_id,
    )
    data = await state.manager.mining(chosen)
    return _ok(f"mining {action}: done", data, request_id)


@router.get("/instances", response_model=Envelope, responses=error_answers_doc(ADMIN_ANSWERS))
async def instances(state: StateDep, request_id: RequestIdDep) -> Envelope:
    """The registered service instances with their breaker state and TTL."""
    now = time.monotonic()
    views = [
        InstanceView.model_validate(i.view(now, state.registry.ttl_s)).model_dump()
        for i in state.registry.instances()
    ]
    return _ok("instances", views, request_id)
