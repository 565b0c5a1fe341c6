"""The cluster manager's operator API: list nodes, cordon, uncordon and restart a node, start
and stop sealing, recent events, health, metrics.

`python -m geth_cluster.api` serves it (ETHGW_MANAGER_API_HOST / _API_PORT, loopback by
default). Only signed calls pass (ethgw_wire.request_auth: the gateway's admin routes, the
providers' recycle requests, the platform's tools), but for /healthz and /metrics. The
manager lives in the app's lifespan.
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
from collections.abc import AsyncIterator, Callable, Iterator
from contextlib import AbstractAsyncContextManager, asynccontextmanager
from typing import Annotated, Any, Literal

import uvicorn
from fastapi import APIRouter, Depends, FastAPI, HTTPException, Request, Response
from prometheus_client import CONTENT_TYPE_LATEST, generate_latest
from prometheus_client.core import CounterMetricFamily, GaugeMetricFamily, Metric
from prometheus_client.registry import Collector, CollectorRegistry

from balancer import Zone
from ethgw_wire.node_reports import Lifecycle
from ethgw_wire.request_auth import SignedRequestsOnly, ensure_request_key
from ethgw_wire.settings import ClusterSettings, KafkaSettings
from geth_cluster.cluster import GethCluster
from geth_cluster.config import ManagerSettings
from geth_cluster.errors import ClusterError, NodeUnreachableError, RpcError, UnknownNodeError
from geth_cluster.manager import ClusterManager, open_manager
from geth_cluster.recycler import REASON_OPERATOR, RestartInProgressError
from service_kit.ports import ensure_port_free

log = logging.getLogger("ethgw.manager")


class ApiStartError(ClusterError):
    """The operator API (or the manager in its lifespan) did not start."""


# Without a tick for this many intervals the sampling loop is stuck: /healthz says so.
STALE_TICKS = 3

ManagerOpener = Callable[[], AbstractAsyncContextManager[ClusterManager]]


# -- metrics ---------------------------------------------------------------------------------


class SnapshotCollector(Collector):
    """Prometheus figures read from the manager's snapshot at scrape time.

    Read at scrape time rather than set on every tick, so a scrape always sees one consistent
    tick and the manager carries no metrics code of its own.
    """

    def __init__(self, manager: ClusterManager) -> None:
        self._manager = manager

    def collect(self) -> Iterator[Metric]:
        snapshot = self._manager.snapshot()
        memory = GaugeMetricFamily(
            "ethgw_node_memory_ratio", "Smoothed memory used / budget.", labels=["node"]
        )
        cpu = GaugeMetricFamily(
            "ethgw_node_cpu_ratio", "Smoothed CPU used / cores allotted.", labels=["node"]
        )
        dist = GaugeMetricFamily(
            "ethgw_node_distance", "d = sqrt(memory^2 + cpu^2) in the state plane.", labels=["node"]
        )
        free = GaugeMetricFamily(
            "ethgw_node_free_memory_bytes", "Memory budget left (negative: over).", labels=["node"]
        )
        zone = GaugeMetricFamily(
            "ethgw_node_zone", "1 for the node's current zone.", labels=["node", "zone"]
        )
        lifecycle = GaugeMetricFamily(
            "ethgw_node_lifecycle", "1 for the node's life-cycle state.", labels=["node", "state"]
        )
        samples = CounterMetricFamily(
            "ethgw_node_samples", "Resource samples taken of the node.", labels=["node"]
        )
        restarts = CounterMetricFamily(
            "ethgw_node_restarts", "Restarts of the node the manager saw.", labels=["node"]
        )
        for node in snapshot.nodes:
            memory.add_metric([node.node_id], node.memory)
            cpu.add_metric([node.node_id], node.cpu)
            dist.add_metric([node.node_id], node.distance)
            if node.free_memory_mb is not None:
                free.add_metric([node.node_id], node.free_memory_mb * 1024 * 1024)
            for z in Zone:
                zone.add_metric([node.node_id, z.value], float(node.zone is z))
            for state in Lifecycle:
                lifecycle.add_metric([node.node_id, state.value], float(node.lifecycle is state))
            samples.add_metric([node.node_id], node.samples)
            restarts.add_metric([node.node_id], node.restarts)
        yield from (memory, cpu, dist, free, zone, lifecycle, samples, restarts)
        recycler, healer = self._manager.recycler, self._manager.healer
        recycled = CounterMetricFamily(
            "ethgw_manager_restarts",
            "Restarts finished, by node and reason (zone3, operator, crashed).",
            labels=["node", "reason"],
        )
        for (node_id, reason), count in sorted((recycler.restarts + healer.restarts).items()):
            recycled.add_metric([node_id, reason], count)
        failed = CounterMetricFamily(
            "ethgw_manager_restart_failures",
            "Restarts that failed, by node and reason.",
            labels=["node", "reason"],
        )
        for (node_id, reason), count in sorted((recycler.failures + healer.failures).items()):
            failed.add_metric([node_id, reason], count)
        yield from (recycled, failed)
        yield GaugeMetricFamily("ethgw_cluster_lbh", "LBH over nodes not DOWN.", snapshot.lbh)
        # The zone bounds, so a dashboard can draw them beside the distances.
        yield GaugeMetricFamily("ethgw_cluster_dis_ave", "Zone I/II boundary.", snapshot.dis_ave)
        yield GaugeMetricFamily(
            "ethgw_cluster_dis_avemin", "Mean idle distance.", snapshot.dis_avemin
        )
        yield GaugeMetricFamily(
            "ethgw_cluster_dis_avemax", "Zone II/III boundary.", snapshot.dis_avemax
        )
        yield GaugeMetricFamily(
            "ethgw_manager_tick_seconds", "Wall time of the last tick.", snapshot.tick_seconds
        )


# -- routes ----------------------------------------------------------------------------------


def get_manager(request: Request) -> ClusterManager:
    manager: ClusterManager = request.app.state.manager
    return manager


def get_registry(request: Request) -> CollectorRegistry:
    registry: CollectorRegistry = request.app.state.registry
    return registry


ManagerDep = Annotated[ClusterManager, Depends(get_manager)]
RegistryDep = Annotated[CollectorRegistry, Depends(get_registry)]

router = APIRouter()


@router.get("/nodes")
async def list_nodes(manager: ManagerDep) -> dict[str, Any]:
    """Every pool node with life cycle, zone, distance and ratios; LBH and the bounds."""
    return manager.snapshot().as_dict()


@router.post("/nodes/{node_id}/cordon")
async def cordon(node_id: str, manager: ManagerDep) -> dict[str, Any]:
    """Take the node out of routing without a restart; answers once the state is published."""
    try:
        report = await manager.cordon(node_id)
    except UnknownNodeError as error:
        raise HTTPException(status_code=404, detail=str(error)) from None
    return report.model_dump(mode="json")


@router.post("/nodes/{node_id}/uncordon")
async def uncordon(node_id: str, manager: ManagerDep) -> dict[str, Any]:
    """Return the node to routing; answers once the state is published."""
    try:
        report = await manager.uncordon(node_id)
    except UnknownNodeError as error:
        raise HTTPException(status_code=404, detail=str(error)) from None
    return report.model_dump(mode="json")


@router.post("/nodes/{node_id}/restart", status_code=202)
async def restart(node_id: str, manager: ManagerDep) -> dict[str, Any]:
    """Drain, restart and resync the node (reason `operator`); answers at once, the steps go
    to GET /events and the events topic. 409 while another restart runs."""
    try:
        manager.recycler.restart(node_id, REASON_OPERATOR)
    except UnknownNodeError as error:
        raise HTTPException(status_code=404, detail=str(error)) from None
    except RestartInProgressError as error:
        raise HTTPException(status_code=409, detail=str(error)) from None
    return {"node": node_id, "reason": REASON_OPERATOR, "status": "started"}


@router.post("/mining/{action}")
async def mining(action: Literal["start", "stop"], manager: ManagerDep) -> dict[str, Any]:
    """Start or stop sealing on the sealer; answers whether it now seals and the head."""
    try:
        state = await manager.cluster.set_mining(action == "start")
    except NodeUnreachableError as error:
        raise HTTPException(status_code=503, detail=str(error)) from None
    except RpcError as error:
        raise HTTPException(status_code=502, detail=str(error)) from None
    log.info("operator mining action=%s mining=%s block=%d", action, state.mining, state.block)
    return {"action": action, "mining": state.mining, "block": state.block}


@router.get("/events")
async def events(manager: ManagerDep) -> dict[str, Any]:
    """The recent life-cycle events (recycle steps, cordons), oldest first."""
    return {"events": [e.model_dump(mode="json") for e in manager.events.recent()]}


@router.get("/lbh")
async def lbh(manager: ManagerDep) -> dict[str, Any]:
    """LBH of the recent ticks, oldest first, as `[wall time, lbh]` pairs (LBH < 0: paused)."""
    return {
        "interval_s": manager.settings.sample_interval_s,
        "points": [[at, value] for at, value in manager.lbh_history()],
    }


@router.get("/healthz")
async def healthz(manager: ManagerDep, response: Response) -> dict[str, Any]:
    """200 while the loop keeps its rhythm and Kafka takes the reports; 503 otherwise."""
    age = manager.seconds_since_tick()
    if age is None or age > STALE_TICKS * manager.settings.sample_interval_s:
        status = "stale"  # the providers route by states that no longer change
    elif not manager.publishing_ok:
        status = "publish_failing"
    else:
        status = "ok"
    if status != "ok":
        response.status_code = 503
    return {"status": status, "seconds_since_tick": age}


@router.get("/metrics")
async def metrics(registry: RegistryDep) -> Response:
    return Response(generate_latest(registry), media_type=CONTENT_TYPE_LATEST)


# -- the app ---------------------------------------------------------------------------------


def create_app(open_service: ManagerOpener) -> FastAPI:
    """The operator API around the manager that `open_service()` yields for the app's life."""

    @asynccontextmanager
    async def lifespan(app: FastAPI) -> AsyncIterator[None]:
        async with open_service() as manager:
            registry = CollectorRegistry()
            registry.register(SnapshotCollector(manager))
            app.state.manager, app.state.registry = manager, registry
            yield

    app = FastAPI(title="ethgw cluster manager", lifespan=lifespan)
    app.include_router(router)
    app.add_middleware(SignedRequestsOnly, key=ensure_request_key())
    return app


def local_opener(
    cluster_settings: ClusterSettings | None = None,
    kafka_settings: KafkaSettings | None = None,
    manager_settings: ManagerSettings | None = None,
) -> ManagerOpener:
    """Opens a manager of the local cluster (already started by `ethgw up`), on the runtime
    its settings name (ETHGW_CLUSTER_RUNTIME)."""

    @asynccontextmanager
    async def open_service() -> AsyncIterator[ClusterManager]:
        # Imported here: the launcher's toolchain paths matter only for a local cluster.
        from geth_cluster.runtimes import make_runtime
        from geth_cluster.toolchain import geth_binary

        settings = cluster_settings or ClusterSettings()
        cluster = GethCluster(settings, make_runtime(settings, geth_binary()))
        try:
            async with open_manager(
                cluster, kafka_settings or KafkaSettings(), manager_settings or ManagerSettings()
            ) as manager:
                yield manager
        finally:
            await cluster.aclose()

    return open_service


class _EmbeddedServer(uvicorn.Server):
    """uvicorn without signal handlers of its own: the launcher that embeds it owns them."""

    @contextlib.contextmanager
    def capture_signals(self) -> Iterator[None]:
        yield


async def serve_api(
    cluster: GethCluster,
    kafka_settings: KafkaSettings,
    manager_settings: ManagerSettings,
    stop_event: asyncio.Event,
) -> None:
    """The manager and its operator API on api_host:api_port until `stop_event` is set.

    What `ethgw up` runs, as a task, when it wants the operator endpoints too (`run_manager`
    is the same without them). Raises PortInUseError or ApiStartError when it cannot start.
    """
    ensure_port_free(
        manager_settings.api_port, "ETHGW_MANAGER_API_PORT, the manager's operator API"
    )
    app = create_app(lambda: open_manager(cluster, kafka_settings, manager_settings))
    config = uvicorn.Config(
        app,
        host=manager_settings.api_host,
        port=manager_settings.api_port,
        log_config=None,  # the process's logging, one line per event
        lifespan="on",
    )
    server = _EmbeddedServer(config)
    serving = asyncio.create_task(server.serve(), name="manager-api")
    stopping = asyncio.create_task(stop_event.wait(), name="manager-api-stop")
    try:
        await asyncio.wait({serving, stopping}, return_when=asyncio.FIRST_COMPLETED)
    finally:
        server.should_exit = True
        stopping.cancel()
        try:
            await serving
        except SystemExit:  # uvicorn exits the process when it cannot bind
            raise ApiStartError("the operator API could not listen; see the log") from None
    if not stop_event.is_set():
        # uvicorn returns instead of raising when the lifespan (the manager) fails to start.
        raise ApiStartError("the operator API stopped on its own; see the log for the cause")
    log.info("manager api stopped")


def main() -> None:
    """`python -m geth_cluster.api`: the manager and its operator API, until Ctrl-C."""
    from service_kit.logs import configure_logging
    from service_kit.paths import keep_state_private

    keep_state_private()
    configure_logging()
    settings = ManagerSettings()
    app = create_app(local_opener(manager_settings=settings))
    uvicorn.run(app, host=settings.api_host, port=settings.api_port, log_config=None)


if __name__ == "__main__":
    main()
