"""A node's allotment on a host without containers: its process in a cgroup of its own with a
CPU quota and a memory limit, the mechanism behind a container's `--cpus` and `--memory`.

cgroup v1 (a `cpu` and a `memory` hierarchy, each with a group of this name) or v2 (one group
with `cpu.max` and `memory.max`). The CPU quota is required: a group that cannot be made or
written raises `OSError`. The memory limit is applied where the host lets it be written; where
it does not, the group is CPU-capped only and `memory_limited` says so (the manager still
measures the node's memory against its budget, but nothing stops it from growing past it).
"""

from __future__ import annotations

import contextlib
import logging
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path

from geth_cluster.layout import cluster_id

log = logging.getLogger("ethgw.cgroups")

CGROUP_ROOT = Path("/sys/fs/cgroup")
PERIOD_US = 100_000
MIN_QUOTA_US = 1000  # the kernel's smallest cfs quota
_MB = 1024 * 1024


@dataclass(frozen=True)
class Allotment:
    """What one node may use, as one container per host would be given."""

    cores: float
    memory_mb: float | None = None  # None: CPU only

    def describe(self) -> str:
        memory = "" if self.memory_mb is None else f", {self.memory_mb:g} MB"
        return f"{self.cores:g} core{memory}"


def quota_us(cores: float) -> int:
    """The CFS quota per 100 ms period that gives `cores` of CPU."""
    return max(MIN_QUOTA_US, round(cores * PERIOD_US))


def own_v1_groups(proc_cgroup: str) -> dict[str, str]:
    """The calling process's group in each v1 hierarchy, from /proc/self/cgroup's text
    ("4:memory:/a/b" -> {"memory": "a/b"})."""
    groups = {}
    for line in proc_cgroup.splitlines():
        _, controllers, path = line.split(":", 2)
        for controller in controllers.split(","):
            if controller:
                groups[controller] = path.strip("/")
    return groups


def _own_v1_groups(root: Path) -> dict[str, str]:
    """Under the real hierarchy, a group is made inside the caller's own (v1), so it stays
    within whatever limits the host put this process under; a test's root has none."""
    if root != CGROUP_ROOT:
        return {}
    try:
        return own_v1_groups(Path("/proc/self/cgroup").read_text())
    except OSError:
        return {}


class CgroupLimit:
    """One cgroup named `name`, limited to `allotment`; `add(pid)` confines a (new) process
    to it, so the limit follows a node across restarts. v1: made inside the caller's own
    group of each hierarchy; v2: at the top of the unified hierarchy."""

    def __init__(self, name: str, allotment: Allotment, root: Path = CGROUP_ROOT) -> None:
        self.allotment = allotment
        self._v1 = (root / "cpu" / "cpu.cfs_quota_us").exists()
        own = _own_v1_groups(root) if self._v1 else {}
        self._root = root / "cpu" / own.get("cpu", "") if self._v1 else root
        self._group = self._root / name
        self._group.mkdir(exist_ok=True)
        try:
            self._limit_cpu()
        except OSError:
            self.remove_group(self._group, self._root)
            raise
        self._memory_root = root / "memory" / own.get("memory", "") if self._v1 else root
        self._memory_group = self._memory_root / name if self._v1 else self._group
        self.memory_limited = allotment.memory_mb is not None and self._limit_memory()
        memory = f", {allotment.memory_mb:g} MB" if self.memory_limited else ""
        self.description = f"cgroup {self._group}: {allotment.cores:g} core{memory}"

    @property
    def group(self) -> Path:
        return self._group

    def _limit_cpu(self) -> None:
        quota = quota_us(self.allotment.cores)
        if self._v1:
            (self._group / "cpu.cfs_period_us").write_text(str(PERIOD_US))
            (self._group / "cpu.cfs_quota_us").write_text(str(quota))
        else:
            (self._group / "cpu.max").write_text(f"{quota} {PERIOD_US}")

    def _limit_memory(self) -> bool:
        """True when the memory limit (and no swap beyond it) is written."""
        assert self.allotment.memory_mb is not None
        limit = str(int(self.allotment.memory_mb * _MB))
        try:
            self._memory_group.mkdir(exist_ok=True)
            if self._v1:
                (self._memory_group / "memory.limit_in_bytes").write_text(limit)
                swap = self._memory_group / "memory.memsw.limit_in_bytes"
                if swap.exists():  # only with swap accounting; limit + swap = limit: no swap
                    swap.write_text(limit)
            else:
                (self._memory_group / "memory.max").write_text(limit)
                swap = self._memory_group / "memory.swap.max"
                if swap.exists():
                    swap.write_text("0")
        except OSError as error:
            log.warning(
                "memory limit not applied group=%s memory_mb=%g reason=%s",
                self._memory_group, self.allotment.memory_mb, error,
            )  # fmt: skip
            if self._v1:
                self.remove_group(self._memory_group, self._memory_root)
            return False
        return True

    def add(self, pid: int) -> None:
        (self._group / "cgroup.procs").write_text(str(pid))
        if self.memory_limited and self._v1:
            (self._memory_group / "cgroup.procs").write_text(str(pid))

    def throttled_periods(self) -> int:
        """How many quota periods the group hit its cap in (cpu.stat nr_throttled)."""
        for line in (self._group / "cpu.stat").read_text().splitlines():
            name, _, value = line.partition(" ")
            if name == "nr_throttled":
                return int(value)
        return 0

    def close(self) -> None:
        """Move what is still in the group back to its parent, and remove the group."""
        self.remove_group(self._group, self._root)
        if self._v1 and self.memory_limited:
            self.remove_group(self._memory_group, self._memory_root)

    @staticmethod
    def remove_group(group: Path, root: Path) -> None:
        with contextlib.suppress(OSError):
            for pid in (group / "cgroup.procs").read_text().split():
                with contextlib.suppress(OSError):
                    (root / "cgroup.procs").write_text(pid)
        with contextlib.suppress(OSError):
            group.rmdir()


def remove_cgroup(name: str, root: Path = CGROUP_ROOT) -> None:
    """Remove the group `name` wherever it was made (v1: both hierarchies; v2: the one)."""
    if (root / "cpu" / "cpu.cfs_quota_us").exists():
        own = _own_v1_groups(root)
        for controller in ("cpu", "memory"):
            parent = root / controller / own.get(controller, "")
            CgroupLimit.remove_group(parent / name, parent)
    else:
        CgroupLimit.remove_group(root / name, root)


class NodeCgroups:
    """The cgroups of one cluster's nodes, one per node, each limited to its allotment; made
    when the node first starts and kept across its restarts."""

    def __init__(
        self, prefix: str, allotment_of: Callable[[str], Allotment], root: Path = CGROUP_ROOT
    ) -> None:
        self._prefix = prefix
        self._allotment_of = allotment_of
        self._root = root
        self._groups: dict[str, CgroupLimit] = {}

    def confine(self, node: str, pid: int) -> CgroupLimit:
        """Put the node's (new) process in its group; OSError when no group can be made."""
        group = self._groups.get(node)
        if group is None:
            group = CgroupLimit(f"{self._prefix}-{node}", self._allotment_of(node), self._root)
            self._groups[node] = group
        group.add(pid)
        log.info("node confined node=%s pid=%d limit=%s", node, pid, group.description)
        return group

    def release(self, node: str) -> None:
        """Remove the node's group once its process has exited (made by this object or by
        another one of the same cluster: `ethgw cluster up` starts, `ethgw down` stops)."""
        group = self._groups.pop(node, None)
        if group is not None:
            group.close()
        else:
            remove_cgroup(f"{self._prefix}-{node}", self._root)


def cluster_cgroups(state_dir: Path, allotment_of: Callable[[str], Allotment]) -> NodeCgroups:
    """The node cgroups of the cluster in `state_dir`, named after it, so two clusters (a
    benchmark beside a test session) never share a group."""
    return NodeCgroups(f"ethgw-{cluster_id(state_dir)}", allotment_of)
