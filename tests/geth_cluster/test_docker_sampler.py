"""The Docker sampler's arithmetic on Engine API stats frames, and the container mounts (pure
logic; the real engine is exercised in tests/docker)."""

from __future__ import annotations

from pathlib import Path
from typing import Any

import psutil
import pytest

from geth_cluster.runtimes.docker import DockerSampler, bind_mounts

MB = 1024 * 1024
SECOND_NS = 10**9


def frame(used_s: float, host_s: float, pre_used_s: float, pre_host_s: float) -> dict[str, Any]:
    """A cgroup v1 stats frame on a 2-CPU host with 300 MB used, 100 MB of it page cache."""

    def cpu(used: float, host: float) -> dict[str, Any]:
        return {
            "cpu_usage": {"total_usage": int(used * SECOND_NS)},
            "system_cpu_usage": int(host * SECOND_NS),
            "online_cpus": 2,
        }

    return {
        "cpu_stats": cpu(used_s, host_s),
        "precpu_stats": cpu(pre_used_s, pre_host_s),
        "memory_stats": {"usage": 300 * MB, "stats": {"cache": 100 * MB}},
    }


class Frames:
    """Hands the sampler the frames a test sets, as a stats stream would."""

    def __init__(self) -> None:
        self.current: dict[str, Any] | None = None

    def __call__(self) -> dict[str, Any] | None:
        return self.current


def sampler(frames: Frames, cpu_cores: float = 0.5) -> DockerSampler:
    return DockerSampler(frames, "ethgw-test-node-1", memory_budget_mb=1000.0, cpu_cores=cpu_cores)


def test_first_sample_uses_the_frames_own_last_second() -> None:
    """With no earlier call, CPU is the frame's delta against its precpu reading."""
    frames = Frames()
    # 0.25 s of container CPU while the host (2 CPUs) spent 2 s: a quarter of the host.
    frames.current = frame(used_s=10.25, host_s=102.0, pre_used_s=10.0, pre_host_s=100.0)
    sample = sampler(frames).sample()
    assert sample.cpu_cores_used == pytest.approx(0.25)
    assert sample.cpu == pytest.approx(0.5)  # against 0.5 cores allotted


def test_later_samples_measure_since_the_previous_call() -> None:
    """The second call's CPU covers the time since the first, not the frame's last second."""
    frames = Frames()
    probe = sampler(frames, cpu_cores=1.0)
    frames.current = frame(used_s=10.0, host_s=100.0, pre_used_s=9.9, pre_host_s=98.0)
    probe.sample()
    # 3 s of host time (1.5 s wall on 2 CPUs) later, 1.5 s of container CPU: one full core.
    frames.current = frame(used_s=11.5, host_s=103.0, pre_used_s=11.49, pre_host_s=101.0)
    assert probe.sample().cpu_cores_used == pytest.approx(1.0)


def test_cpu_ratio_is_clipped_at_one() -> None:
    """A container over its quota for a moment still reads as a ratio of 1."""
    frames = Frames()
    frames.current = frame(used_s=12.0, host_s=102.0, pre_used_s=10.0, pre_host_s=100.0)
    assert sampler(frames, cpu_cores=0.5).sample().cpu == 1.0


def test_a_restarted_containers_reset_counters_fall_back_to_the_frame() -> None:
    """Counters lower than the previous call's (a restart) give no negative CPU."""
    frames = Frames()
    probe = sampler(frames)
    frames.current = frame(used_s=50.0, host_s=500.0, pre_used_s=49.0, pre_host_s=498.0)
    probe.sample()
    frames.current = frame(used_s=0.5, host_s=510.0, pre_used_s=0.4, pre_host_s=508.0)
    assert probe.sample().cpu_cores_used == pytest.approx(0.1)


def test_memory_is_usage_less_page_cache_against_the_budget() -> None:
    """300 MB used of which 100 MB is page cache: 200 MB, a fifth of a 1000 MB budget."""
    frames = Frames()
    frames.current = frame(used_s=1.0, host_s=10.0, pre_used_s=1.0, pre_host_s=9.0)
    sample = sampler(frames).sample()
    assert sample.memory_mb == pytest.approx(200.0)
    assert sample.memory == pytest.approx(0.2)


def test_a_stopped_container_raises_like_a_gone_process() -> None:
    """The frames of a stopped container carry no memory usage: NoSuchProcess, as for a process."""
    frames = Frames()
    frames.current = {"cpu_stats": {}, "precpu_stats": {}, "memory_stats": {}}
    with pytest.raises(psutil.NoSuchProcess):
        sampler(frames).sample()


def test_no_frame_at_all_raises_like_a_gone_process() -> None:
    """A stream that delivers nothing (engine gone, container removed) is a gone node."""
    with pytest.raises(psutil.NoSuchProcess):
        sampler(Frames()).sample()


def test_mounts_are_the_datadir_and_the_files_the_arguments_name(tmp_path: Path) -> None:
    """The datadir read-write; genesis and password files outside it read-only; nothing else."""
    datadir = tmp_path / "node-1"
    datadir.mkdir()
    genesis = tmp_path / "genesis.json"
    genesis.write_text("{}")
    inside = datadir / "config.toml"
    inside.write_text("")
    args = ["init", "--datadir", str(datadir), "--config", str(inside), str(genesis), "--x", "1"]
    assert bind_mounts(datadir, args) == {
        str(datadir): {"bind": str(datadir), "mode": "rw"},
        str(genesis): {"bind": str(genesis), "mode": "ro"},
    }
