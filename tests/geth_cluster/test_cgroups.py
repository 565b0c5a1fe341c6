"""A node's allotment in the process runtime: the cgroup files written for it, on a fake cgroup
root (v1 and v2 layouts), and the runtime putting each service node's process in its group.

The real kernel's side (a capped geth, the manager's view of it) is test_node_allotment.py.
"""

from __future__ import annotations

from pathlib import Path

import pytest

from ethgw_wire.settings import ClusterSettings
from geth_cluster.cgroups import (
    Allotment,
    CgroupLimit,
    NodeCgroups,
    own_v1_groups,
    quota_us,
    remove_cgroup,
)
from geth_cluster.errors import NodeAllotmentError
from geth_cluster.layout import NodeSpec
from geth_cluster.runtimes import make_runtime
from geth_cluster.runtimes.local import LocalProcessRuntime

SLEEPER = "#!/bin/sh\nexec sleep 60\n"


def v1_root(tmp_path: Path, swap_accounting: bool = True) -> Path:
    """The files of a v1 host's cpu and memory hierarchies that the code looks for."""
    root = tmp_path / "cgroup"
    (root / "cpu").mkdir(parents=True)
    (root / "cpu" / "cpu.cfs_quota_us").write_text("-1")
    (root / "memory").mkdir()
    if swap_accounting:
        # A fake group has no kernel to make its files: the code writes only existing ones.
        (root / "memory" / "node").mkdir()
        (root / "memory" / "node" / "memory.memsw.limit_in_bytes").write_text("")
    return root


def v2_root(tmp_path: Path) -> Path:
    root = tmp_path / "cgroup2"
    root.mkdir()
    (root / "cgroup.controllers").write_text("cpu memory")
    (root / "node").mkdir()
    (root / "node" / "memory.swap.max").write_text("max")
    return root


def test_quota_is_the_cores_share_of_a_100_ms_period() -> None:
    """0.25 core is 25 ms of every 100 ms; below the kernel's 1 ms minimum, the minimum."""
    assert quota_us(0.25) == 25_000
    assert quota_us(2.0) == 200_000
    assert quota_us(0.001) == 1000


def test_v1_group_gets_a_cpu_quota_and_a_memory_limit_without_swap(tmp_path: Path) -> None:
    """v1: cpu.cfs_quota_us in the cpu hierarchy, memory.limit_in_bytes (and memsw equal to it:
    no swap) in the memory one."""
    root = v1_root(tmp_path)
    limit = CgroupLimit("node", Allotment(0.25, 512), root)
    cpu, memory = root / "cpu" / "node", root / "memory" / "node"
    assert (cpu / "cpu.cfs_period_us").read_text() == "100000"
    assert (cpu / "cpu.cfs_quota_us").read_text() == "25000"
    assert (memory / "memory.limit_in_bytes").read_text() == str(512 * 2**20)
    assert (memory / "memory.memsw.limit_in_bytes").read_text() == str(512 * 2**20)
    assert limit.memory_limited


def test_v1_process_is_added_to_both_hierarchies(tmp_path: Path) -> None:
    """add(pid) writes the pid to the cpu group and the memory group."""
    root = v1_root(tmp_path)
    CgroupLimit("node", Allotment(0.5, 256), root).add(4321)
    assert (root / "cpu" / "node" / "cgroup.procs").read_text() == "4321"
    assert (root / "memory" / "node" / "cgroup.procs").read_text() == "4321"


def test_v2_group_gets_cpu_max_and_memory_max(tmp_path: Path) -> None:
    """v2: one group with cpu.max "quota period", memory.max and no swap."""
    root = v2_root(tmp_path)
    limit = CgroupLimit("node", Allotment(0.1, 1024), root)
    limit.add(99)
    group = root / "node"
    assert (group / "cpu.max").read_text() == "10000 100000"
    assert (group / "memory.max").read_text() == str(1024 * 2**20)
    assert (group / "memory.swap.max").read_text() == "0"
    assert (group / "cgroup.procs").read_text() == "99"


def test_cpu_only_allotment_writes_no_memory_limit(tmp_path: Path) -> None:
    """An allotment without memory (the slowed node's cap) leaves memory alone."""
    root = v2_root(tmp_path)
    limit = CgroupLimit("node", Allotment(0.03), root)
    assert not limit.memory_limited
    assert not (root / "node" / "memory.max").exists()


def test_unwritable_memory_leaves_a_cpu_capped_group(tmp_path: Path) -> None:
    """Where the memory limit cannot be written, the CPU quota still holds and the group
    says its memory is not limited."""
    root = v1_root(tmp_path, swap_accounting=False)
    (root / "memory").rmdir()
    (root / "memory").write_text("not a hierarchy")  # mkdir under it fails
    limit = CgroupLimit("node", Allotment(0.25, 512), root)
    assert (root / "cpu" / "node" / "cpu.cfs_quota_us").read_text() == "25000"
    assert not limit.memory_limited
    assert "MB" not in limit.description


def test_unwritable_cpu_quota_is_an_error(tmp_path: Path) -> None:
    """No CPU quota, no confinement: the group raises OSError (the runtime refuses to start)."""
    root = v2_root(tmp_path)
    (root / "node" / "cpu.max").mkdir()  # a folder: writing it fails
    with pytest.raises(IsADirectoryError):
        CgroupLimit("node", Allotment(0.25, 512), root)


def test_own_groups_are_read_per_v1_hierarchy() -> None:
    """/proc/self/cgroup's lines name the caller's group in each hierarchy."""
    text = "4:memory:/process_api/abc\n2:cpu,cpuacct:/\n0::/\n"
    groups = own_v1_groups(text)
    assert groups["memory"] == "process_api/abc"
    assert groups["cpu"] == groups["cpuacct"] == ""


def test_node_cgroups_keep_one_group_per_node_across_restarts(tmp_path: Path) -> None:
    """A node's second process (a restart) goes to the same group, made once with the node's
    own allotment; release removes it."""
    root = v2_root(tmp_path)
    allotments = {"node-1": Allotment(0.2, 256), "node-2": Allotment(0.4, 256)}
    groups = NodeCgroups("ethgw-x", allotments.__getitem__, root)
    first = groups.confine("node-1", 10)
    again = groups.confine("node-1", 11)
    groups.confine("node-2", 12)
    assert first is again
    assert (root / "ethgw-x-node-1" / "cgroup.procs").read_text() == "11"
    assert (root / "ethgw-x-node-2" / "cpu.max").read_text() == "40000 100000"
    (root / "ethgw-x-node-1" / "cgroup.procs").write_text("")  # the process has exited
    for name in ("cpu.max", "memory.max", "cgroup.procs"):
        (root / "ethgw-x-node-1" / name).unlink()  # a real group's files go with it
    groups.release("node-1")
    assert not (root / "ethgw-x-node-1").exists()


def test_remove_cgroup_finds_a_group_made_by_another_process(tmp_path: Path) -> None:
    """`ethgw down` removes the group `ethgw up` made, in both v1 hierarchies."""
    root = v1_root(tmp_path, swap_accounting=False)
    (root / "cpu" / "ethgw-x-node-1").mkdir()
    (root / "memory" / "ethgw-x-node-1").mkdir()
    remove_cgroup("ethgw-x-node-1", root)
    assert not (root / "cpu" / "ethgw-x-node-1").exists()
    assert not (root / "memory" / "ethgw-x-node-1").exists()


def test_settings_ask_for_a_confining_process_runtime(tmp_path: Path) -> None:
    """process_node_cgroup gives the process runtime the cluster's node cgroups."""
    geth = tmp_path / "geth"
    plain = make_runtime(ClusterSettings(state_dir=tmp_path), geth)
    confining = make_runtime(ClusterSettings(state_dir=tmp_path, process_node_cgroup=True), geth)
    assert isinstance(plain, LocalProcessRuntime)
    assert plain.cgroups is None
    assert isinstance(confining, LocalProcessRuntime)
    assert confining.cgroups is not None


def _script(tmp_path: Path) -> Path:
    path = tmp_path / "geth"
    path.write_text(SLEEPER)
    path.chmod(0o755)
    return path


def _spec(tmp_path: Path, name: str, sealer: bool = False) -> NodeSpec:
    return NodeSpec(name, 1, sealer, tmp_path / name, 30303, 8546, 8552)


async def test_runtime_starts_a_service_node_in_its_group(tmp_path: Path) -> None:
    """The process runtime puts a service node's process in the node's group at start; the
    sealer runs unconfined."""
    root = v2_root(tmp_path)
    groups = NodeCgroups("ethgw-t", lambda node: Allotment(0.5, 512), root)
    runtime = LocalProcessRuntime(_script(tmp_path), groups)
    node, sealer = _spec(tmp_path, "node-1"), _spec(tmp_path, "sealer", sealer=True)
    await runtime.start(node, ["--datadir", str(node.datadir)])
    await runtime.start(sealer, ["--datadir", str(sealer.datadir)])
    try:
        pid = runtime.pid(node)
        assert (root / "ethgw-t-node-1" / "cgroup.procs").read_text() == str(pid)
        assert (root / "ethgw-t-node-1" / "cpu.max").read_text() == "50000 100000"
        assert not (root / "ethgw-t-sealer").exists()
    finally:
        await runtime.stop(node, timeout_s=5.0)
        await runtime.stop(sealer, timeout_s=5.0)


async def test_runtime_refuses_to_run_a_node_it_cannot_confine(tmp_path: Path) -> None:
    """No group for the node: the start fails naming the setting, and no process is left."""
    root = v2_root(tmp_path)
    (root / "ethgw-t-node-1").mkdir()
    (root / "ethgw-t-node-1" / "cpu.max").mkdir()  # unwritable
    runtime = LocalProcessRuntime(
        _script(tmp_path), NodeCgroups("ethgw-t", lambda node: Allotment(0.5, 512), root)
    )
    node = _spec(tmp_path, "node-1")
    with pytest.raises(NodeAllotmentError, match="PROCESS_NODE_CGROUP"):
        await runtime.start(node, ["--datadir", str(node.datadir)])
    assert runtime.pid(node) is None
    assert not (node.datadir / "geth.pid").exists()
