"""Shared fixtures: real servers started once per session."""

import os
import tempfile
from pathlib import Path

import pytest

pytest_plugins = ["tests.cluster_fixtures", "tests.kafka_fixtures", "tests.pipeline_fixtures"]


def pytest_configure(config: pytest.Config) -> None:
    """One request key for the session (ethgw_wire.request_auth), never the repository's own
    .state one: every server a test starts and every client it signs with inherit it."""
    if "ETHGW_AUTH_KEY_FILE" not in os.environ:
        folder = Path(tempfile.mkdtemp(prefix="ethgw-auth-"))
        os.environ["ETHGW_AUTH_KEY_FILE"] = str(folder / "request.key")
