"""The log format's handler: one line per event, on the stderr of the moment."""

from __future__ import annotations

import io
import logging
from collections.abc import Iterator

import pytest

from service_kit.logs import configure_logging


@pytest.fixture
def restored_root() -> Iterator[None]:
    root = logging.getLogger()
    handlers, level = root.handlers[:], root.level
    yield
    root.handlers[:] = handlers
    root.setLevel(level)


def test_records_go_to_the_stderr_of_the_moment(
    restored_root: None, monkeypatch: pytest.MonkeyPatch
) -> None:
    """A stderr swapped after configuring gets the next line; the old one gets nothing."""
    before, after = io.StringIO(), io.StringIO()
    monkeypatch.setattr("sys.stderr", before)
    configure_logging("INFO")
    monkeypatch.setattr("sys.stderr", after)
    logging.getLogger("ethgw.test").info("node started node=%s", "node-1")
    assert before.getvalue() == ""
    assert after.getvalue().endswith(" INFO ethgw.test node started node=node-1\n")


def test_a_closed_earlier_stderr_is_no_logging_error(
    restored_root: None, monkeypatch: pytest.MonkeyPatch
) -> None:
    """Closing the stream that was stderr at configure time breaks no later record."""
    earlier, now = io.StringIO(), io.StringIO()
    monkeypatch.setattr("sys.stderr", earlier)
    configure_logging("INFO")
    earlier.close()
    monkeypatch.setattr("sys.stderr", now)
    logging.getLogger("ethgw.test").warning("still here")
    assert "Logging error" not in now.getvalue()
    assert now.getvalue().endswith("still here\n")
