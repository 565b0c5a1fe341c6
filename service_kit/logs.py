"""One log line per event: time, level, component, message with key=value fields."""

from __future__ import annotations

import logging
import sys
import time
from typing import TextIO


class _UtcFormatter(logging.Formatter):
    def formatTime(self, record: logging.LogRecord, datefmt: str | None = None) -> str:  # noqa: N802
        stamp = time.strftime("%Y-%m-%dT%H:%M:%S", time.gmtime(record.created))
        return f"{stamp}.{int(record.msecs):03d}Z"


class _CurrentStderrHandler(logging.StreamHandler):  # type: ignore[type-arg]
    """Writes to whatever sys.stderr is when a record comes, not when it was configured:
    a command run in-process by a test would otherwise keep writing to that test's
    captured (and later closed) stream."""

    @property
    def stream(self) -> TextIO:
        return sys.stderr

    @stream.setter
    def stream(self, _value: object) -> None:
        """StreamHandler.__init__ sets it; the property ignores that."""


def configure_logging(level: str = "INFO") -> None:
    """Log to stderr; chatty client libraries only from WARNING up."""
    handler = _CurrentStderrHandler()
    handler.setFormatter(_UtcFormatter("%(asctime)s %(levelname)s %(name)s %(message)s"))
    root = logging.getLogger()
    root.handlers[:] = [handler]
    root.setLevel(level.upper())
    for noisy in ("httpx", "httpcore", "aiokafka", "kafka", "web3", "urllib3", "docker"):
        logging.getLogger(noisy).setLevel(logging.WARNING)
