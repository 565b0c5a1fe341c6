"""The node runtime a cluster's settings ask for (`ClusterSettings.runtime`)."""

from __future__ import annotations

from pathlib import Path

from ethgw_wire.settings import ClusterSettings
from geth_cluster.runtimes.base import NodeRuntime

RUNTIME_FILE = "runtime"  # in the state folder: the runtime the nodes were last started on


def make_runtime(settings: ClusterSettings, geth_binary: Path) -> NodeRuntime:
    """LocalProcessRuntime or DockerRuntime, both running the same geth binary, or
    ComposeRuntime, which adopts containers compose made (and runs no binary of ours)."""
    if settings.runtime == "compose":
        from geth_cluster.runtimes.compose import ComposeRuntime

        return ComposeRuntime(settings)
    if settings.runtime == "docker":
        from geth_cluster.runtimes.docker import DockerRuntime

        return DockerRuntime(settings, geth_binary)
    from geth_cluster.runtimes.local import LocalProcessRuntime

    if not settings.process_node_cgroup:
        return LocalProcessRuntime(geth_binary)
    from geth_cluster.cgroups import Allotment, cluster_cgroups

    def allotment_of(node: str) -> Allotment:
        return Allotment(settings.cpu_cores_of(node), settings.node_memory_budget_mb)

    return LocalProcessRuntime(geth_binary, cluster_cgroups(settings.state_dir, allotment_of))


def remember_runtime(state_dir: Path, name: str) -> None:
    """Record the runtime the cluster is started on, so `status`, `restart` and `down` later
    address the nodes where they run without being told again."""
    state_dir.mkdir(parents=True, exist_ok=True)
    (state_dir / RUNTIME_FILE).write_text(name)


def remembered_runtime(state_dir: Path) -> str | None:
    """The runtime `remember_runtime` recorded for this state folder, if any."""
    try:
        name = (state_dir / RUNTIME_FILE).read_text().strip()
    except FileNotFoundError:
        return None
    return name if name in ("process", "docker") else None
