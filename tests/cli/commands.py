"""Running `ethgw` as a user does: a child process with an environment of its own."""

from __future__ import annotations

import os
import subprocess
import sys
from collections.abc import Mapping
from pathlib import Path

from service_kit.paths import REPO_ROOT


def clean_env(state_dir: Path, **settings: str) -> dict[str, str]:
    """This process's environment without its ETHGW_ settings (the test session's broker
    and cluster), with a state folder of the test's and `settings` on top."""
    inherited = {k: v for k, v in os.environ.items()
                 if not k.startswith("ETHGW_") or k == "ETHGW_TOOLS_DIR"}  # fmt: skip
    return {**inherited, "ETHGW_STATE_DIR": str(state_dir), **settings}


def ethgw(
    *args: str, env: Mapping[str, str], timeout_s: float = 120.0
) -> subprocess.CompletedProcess[str]:
    """`ethgw ARGS...` to its end, its output captured."""
    return subprocess.run(
        [sys.executable, "-m", "ethgw.cli", *args],
        env=dict(env),
        cwd=REPO_ROOT,
        stdin=subprocess.DEVNULL,
        capture_output=True,
        text=True,
        timeout=timeout_s,
    )
