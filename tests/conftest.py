"""Shared fixtures: real servers started once per session."""

import os
import shutil
import tempfile

import pytest

pytest_plugins = ["tests.cluster_fixtures", "tests.kafka_fixtures", "tests.pipeline_fixtures"]

_TEMPORARY_ROOTS: dict[str, str] = {}  # variable set by the session -> its temporary folder


def pytest_configure(config: pytest.Config) -> None:
    """One sealing folder and one request key for every process of the session (the test
    process, the session providers, the services of any state folder), never the repository's
    own .state ones: what a task client seals a provider opens, and every server a test starts
    and every client it signs with share the key (ethgw_wire.request_auth). A sandbox stack
    sets its own."""
    for variable, name in (
        ("ETHGW_SEALING_DIR", "sealing"),
        ("ETHGW_AUTH_KEY_FILE", "request.key"),
    ):
        if variable not in os.environ:
            root = tempfile.mkdtemp(prefix="ethgw-test-")
            _TEMPORARY_ROOTS[variable] = root
            os.environ[variable] = os.path.join(root, name)


def pytest_unconfigure(config: pytest.Config) -> None:
    for variable, root in _TEMPORARY_ROOTS.items():
        os.environ.pop(variable, None)
        shutil.rmtree(root, ignore_errors=True)
