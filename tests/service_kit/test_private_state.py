"""The state folder is its user's only: folders 0700, files 0600, from one umask set at
each entry point plus a chmod of the folders made before (service_kit/paths.py)."""

from __future__ import annotations

import os
import subprocess
import sys
from pathlib import Path

from service_kit.paths import REPO_ROOT, close_folders

# Run in a child: a umask is the whole process's, and the test session's must stay as it is.
CREATE_AFTER_THE_ENTRY_POINT = """
import os, sys
from pathlib import Path
from service_kit.paths import keep_state_private
keep_state_private()
new = Path(sys.argv[1]) / "new" / "deeper"
new.mkdir(parents=True)
(new / "admin.key").write_text("secret")
"""


def _mode(path: Path) -> int:
    return path.stat().st_mode & 0o777


def test_folders_made_before_are_closed_to_others(tmp_path: Path) -> None:
    """close_folders makes every folder under the root 0700, and leaves files alone."""
    old = tmp_path / "state" / "cluster" / "node-1"
    old.mkdir(parents=True, mode=0o755)
    (tmp_path / "state").chmod(0o755)
    (old / "genesis.json").write_text("{}")
    (old / "genesis.json").chmod(0o644)
    close_folders(tmp_path / "state")
    for folder in (tmp_path / "state", tmp_path / "state" / "cluster", old):
        assert _mode(folder) == 0o700, folder
    assert _mode(old / "genesis.json") == 0o644


def test_an_entry_point_closes_the_state_and_creates_only_private_files(tmp_path: Path) -> None:
    """After keep_state_private, the old state folders are 0700 and what the process then
    creates is 0700 (folders) and 0600 (files)."""
    state = tmp_path / "state"
    (state / "old").mkdir(parents=True)
    state.chmod(0o755)
    (state / "old").chmod(0o755)
    env = {**os.environ, "ETHGW_STATE_DIR": str(state), "PYTHONPATH": str(REPO_ROOT)}
    subprocess.run(
        [sys.executable, "-c", CREATE_AFTER_THE_ENTRY_POINT, str(state)], env=env, check=True
    )
    for folder in (state, state / "old", state / "new", state / "new" / "deeper"):
        assert _mode(folder) == 0o700, folder
    assert _mode(state / "new" / "deeper" / "admin.key") == 0o600
