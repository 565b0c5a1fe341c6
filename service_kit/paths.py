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


PRIVATE_UMASK = 0o077  # folders 0700, files 0600


def keep_state_private() -> None:
    """Make what this process and every process it starts creates its user's only (folders
    0700, files 0600: keys, keystores, passwords, tokens, chain and broker data), and close
    the state folders made before, with a wider umask, to others. Called once at each entry
    point (the `ethgw` command, each service, the manager)."""
    os.umask(PRIVATE_UMASK)
    close_folders(default_state_dir())


def close_folders(root: Path) -> None:
    """chmod 0700 every folder under `root` (itself included) that this user owns and that
    others may enter; another user's folders (a container's) are left as they are."""
    uid = os.getuid()
    for folder, _, _ in os.walk(root):
        try:
            status = os.stat(folder)
            if status.st_uid == uid and status.st_mode & 0o077:
                os.chmod(folder, 0o700)
        except OSError:
            continue  # gone meanwhile
