"""scripts/bootstrap_kafka.sh: the cached fast path and the missing-tool message."""

from __future__ import annotations

import os
import subprocess
import time
from pathlib import Path

import pytest

from service_kit.paths import REPO_ROOT

SCRIPT = REPO_ROOT / "scripts" / "bootstrap_kafka.sh"


def _path_without(tmp_path: Path, hidden: set[str]) -> Path:
    """A PATH folder with every command of /usr/bin and /bin except the hidden ones."""
    bin_dir = tmp_path / "bin"
    bin_dir.mkdir()
    for folder in (Path("/usr/bin"), Path("/bin")):
        for tool in folder.iterdir():
            link = bin_dir / tool.name
            if tool.name not in hidden and not link.exists():
                link.symlink_to(tool)
    return bin_dir


@pytest.mark.parametrize("hidden", [{"java"}, {"mvn"}, {"java", "mvn"}])
def test_missing_tool_is_named_with_how_to_install_it(tmp_path: Path, hidden: set[str]) -> None:
    """Without java or mvn the script exits 1, naming the missing tool and the apt-get line."""
    bin_dir = _path_without(tmp_path, hidden)
    env = {**os.environ, "PATH": str(bin_dir), "ETHGW_TOOLS_DIR": str(tmp_path / "tools")}
    done = subprocess.run(
        [str(bin_dir / "bash"), str(SCRIPT)], env=env, capture_output=True, text=True, check=False
    )
    assert done.returncode == 1
    assert f"missing tool(s): {' '.join(sorted(hidden))}" in done.stderr
    assert "apt-get install -y openjdk-17-jdk-headless maven" in done.stderr
    assert not (tmp_path / "tools" / "kafka").exists()


@pytest.mark.slow
def test_second_run_only_relinks_within_seconds(tmp_path: Path) -> None:
    """A second run finds the cached jars and only links them, in well under two seconds."""
    env = {**os.environ, "ETHGW_TOOLS_DIR": str(tmp_path / "tools")}
    subprocess.run([str(SCRIPT)], env=env, capture_output=True, check=True, timeout=600)
    started = time.monotonic()
    subprocess.run([str(SCRIPT)], env=env, capture_output=True, check=True, timeout=60)
    elapsed = time.monotonic() - started

    assert elapsed < 2.0
    assert (tmp_path / "tools" / "kafka" / "kafka_2.13-3.9.1.jar").is_file()
