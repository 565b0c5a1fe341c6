"""Operator endpoints proxied to the cluster manager, and the instances view."""

from __future__ import annotations

from tests.gateway.conftest import Fakes, Gateway, StartGateway
from tests.gateway.servers import FakeManager


async def test_cluster_view_comes_from_the_manager_snapshot(
    gateway: Gateway, manager: FakeManager
) -> None:
    """/admin/cluster shows per node zone, distance, CPU, memory, in-flight, status;
    LBH and Dis_ave."""
    async with gateway.client("admin") as client:
        answer = await client.get("/admin/cluster")
    assert answer.status_code == 200
    data = answer.json()["data"]
    assert (data["lbh"], data["dis_ave"], data["paused"]) == (0.42, 0.55, False)
    first, second = data["nodes"]
    assert first["node_id"] == "node-1"
    assert (first["zone"], first["status"], first["distance"]) == ("I", "up", 0.12)
    assert (first["cpu"], first["memory"], first["in_flight"]) == (0.06, 0.1, None)
    assert (second["status"], second["in_flight"]) == ("cordoned", 3)


async def test_cordon_is_proxied(gateway: Gateway, manager: FakeManager) -> None:
    """POST /admin/nodes/{id}/cordon reaches the manager and returns its answer."""
    async with gateway.client("admin") as client:
        answer = await client.post("/admin/nodes/node-2/cordon")
    assert answer.status_code == 200
    assert answer.json()["data"]["lifecycle"] == "cordoned"
    assert manager.actions == ["cordon node-2"]


async def test_restart_is_proxied(gateway: Gateway, manager: FakeManager) -> None:
    """POST /admin/nodes/{id}/restart reaches the manager's restart."""
    async with gateway.client("admin") as client:
        answer = await client.post("/admin/nodes/node-1/restart")
    assert answer.status_code == 200
    assert manager.actions == ["restart node-1"]


async def test_unknown_node_is_404(gateway: Gateway, manager: FakeManager) -> None:
    """A node the manager does not know is a 404 envelope with the manager's reason."""
    async with gateway.client("admin") as client:
        answer = await client.post("/admin/nodes/node-9/uncordon")
    assert answer.status_code == 404
    assert "node-9" in answer.json()["message"]
    assert manager.actions == []


async def test_operation_the_manager_lacks_is_501(gateway: Gateway, manager: FakeManager) -> None:
    """Mining on a manager without mining routes is 501, not a confusing 404."""
    async with gateway.client("admin") as client:
        answer = await client.post("/admin/mining/start")
    assert answer.status_code == 501
    assert answer.json()["error"]["code"] == "not_implemented"


async def test_bad_node_id_is_422(gateway: Gateway, manager: FakeManager) -> None:
    """A node id with characters no node has never reaches the manager."""
    async with gateway.client("admin") as client:
        answer = await client.post("/admin/nodes/node%201;rm/restart")
    assert answer.status_code == 422
    assert answer.json()["error"]["field"] == "node_id"
    assert manager.actions == []


async def test_manager_unreachable_is_503(start_gateway: StartGateway, dead_url: str) -> None:
    """With the manager down the cluster view is a retriable 503 envelope."""
    gateway = await start_gateway(manager_url=dead_url)
    async with gateway.client("admin") as client:
        answer = await client.get("/admin/cluster")
    assert answer.status_code == 503
    assert answer.json()["error"] == {
        "code": "manager_unavailable",
        "reason": "the cluster manager cannot be reached",
        "retriable": True,
    }


async def test_instances_lists_the_registry(wired: Gateway, fakes: Fakes) -> None:
    """/admin/instances shows every registered instance with kind, URL and breaker."""
    async with wired.client("admin") as client:
        answer = await client.get("/admin/instances")
    views = {v["instance_id"]: v for v in answer.json()["data"]}
    assert sorted(views) == ["read-a", "read-b", "write-a", "write-b"]
    assert views["read-a"]["url"] == fakes.read_a.url
    assert views["write-b"]["kind"] == "write"
    assert views["write-b"]["breaker"] == "closed"
    assert views["write-b"]["healthy"]
