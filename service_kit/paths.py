"""Where the repository keeps its installed tools and its runtime state (both git-ignored)."""

from __future__ import annotations

import os
from pathlib import Path

REPO_ROOT = Path(__file__).resolve().parent.parent


def tools_dir() -> Path:
    """Toolchain folder filled by `make bootstrap` (Geth binary, Kafka jars)."""
    return Path(os.environ.get("ETHGW_TOOLS_DIR", REPO_ROOT / ".tools"))


def default_state_dir() -> Path:
    """Runtime state (chain data, Kafka log dirs, keys); survives `ethgw down`."""
    return Path(os.environ.get("ETHGW_STATE_DIR", REPO_ROOT / ".state"))
