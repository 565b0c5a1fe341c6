"""Shared fixtures: real servers started once per session."""

import os
import shutil
import tempfile

import pytest

pytest_plugins = ["tests.cluster_fixtures", "tests.kafka_fixtures", "tests.pipeline_fixtures"]

_SEALING_ROOT: str | None = None


def pytest_configure(config: pytest.Config) -> None:
    """One sealing folder for every process of the session (the test process, the session
    providers, the services of any state folder), so that what a task client seals a
    provider opens; a sandbox stack sets its own."""
    global _SEALING_ROOT
    if "ETHGW_SEALING_DIR" not in os.environ:
        _SEALING_ROOT = tempfile.mkdtemp(prefix="ethgw-test-sealing-")
        os.environ["ETHGW_SEALING_DIR"] = os.path.join(_SEALING_ROOT, "sealing")


def pytest_unconfigure(config: pytest.Config) -> None:
    if _SEALING_ROOT is not None:
        os.environ.pop("ETHGW_SEALING_DIR", None)
        shutil.rmtree(_SEALING_ROOT, ignore_errors=True)
