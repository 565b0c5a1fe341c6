"""One log line per event, logfmt (readable) or JSON, for our loggers and every library's.

structlog is the one formatter: a `ProcessorFormatter` on the root handler renders the
records of stdlib loggers (uvicorn, aiokafka, a `log.info("... %s", x)` of ours) and of
structlog loggers (`log.info("task_done", task=..., node=...)`) alike. Each line carries the
values bound with `structlog.contextvars` (the request id of the request or task being
served), secrets are redacted by key, and a traceback is folded into one escaped field.
"""

from __future__ import annotations

import logging
import re
import sys
from collections.abc import Iterable, Mapping, MutableMapping
from typing import Any, Literal, TextIO

import structlog
from pydantic_settings import BaseSettings, SettingsConfigDict
from structlog.typing import EventDict, Processor, WrappedLogger

LogFormat = Literal["logfmt", "json"]


class LogSettings(BaseSettings):
    """How every process of the platform logs (ETHGW_LOG_FORMAT, ETHGW_LOG_LEVEL). Declared
    here, not in ethgw_wire/settings.py, because service_kit is below ethgw_wire and its
    `serve` configures the logs of every service."""

    model_config = SettingsConfigDict(env_prefix="ETHGW_LOG_", extra="ignore")

    format: LogFormat = "logfmt"
    level: Literal["DEBUG", "INFO", "WARNING", "ERROR", "CRITICAL"] = "INFO"


# The fields every line starts with, in this order; the event's own fields follow.
LEADING_KEYS = ("ts", "level", "logger", "event", "request_id")
REDACTED = "[redacted]"
SECRET_KEYS = frozenset(
    {"password", "passphrase", "private_key", "secret", "api_key", "token", "authorization"}
)
NOISY_LIBRARIES = ("httpx", "httpcore", "aiokafka", "kafka", "web3", "urllib3", "docker")

_BARE_VALUE = re.compile(r"^[^\s\"=\\]+$")
_KEY_CHARACTER_NOT_ALLOWED = re.compile(r"[^A-Za-z0-9_.\-]")
_JSON = structlog.processors.JSONRenderer(default=repr)
_ESCAPES = {"\\": "\\\\", '"': '\\"', "\n": "\\n", "\r": "\\r", "\t": "\\t"}


def get_logger(name: str) -> structlog.stdlib.BoundLogger:
    """A logger for events with fields: `log.info("task_done", task=..., node=...)`."""
    logger: structlog.stdlib.BoundLogger = structlog.stdlib.get_logger(name)
    return logger


def is_secret_key(key: str) -> bool:
    """A field whose name says it holds a secret: one of SECRET_KEYS, or ending in one
    (`admin_password`, `registry_token`), whatever its case or dashes."""
    normal = key.lower().replace("-", "_")
    return normal in SECRET_KEYS or any(normal.endswith(f"_{name}") for name in SECRET_KEYS)


def redact_secrets(_logger: WrappedLogger, _method: str, event_dict: EventDict) -> EventDict:
    """Replace the value of every field named like a secret (processor)."""
    for key in event_dict:
        if is_secret_key(key):
            event_dict[key] = REDACTED
    return event_dict


def logfmt_value(value: object) -> str:
    """A value as logfmt: bare when it is plain, else quoted with `\\`, `"` and every
    control or line-breaking character escaped, so an event stays one line."""
    if value is None:
        return "null"
    if isinstance(value, bool):
        return "true" if value else "false"
    text = str(value)
    if _BARE_VALUE.match(text) and text.isprintable():
        return text
    return '"' + "".join(_escaped(ch) for ch in text) + '"'


def _escaped(ch: str) -> str:
    if ch in _ESCAPES:
        return _ESCAPES[ch]
    if ch.isprintable():
        return ch
    return f"\\u{ord(ch):04x}"


def _ordered(event_dict: Mapping[str, Any]) -> Iterable[tuple[str, Any]]:
    for key in LEADING_KEYS:
        if key in event_dict:
            yield key, event_dict[key]
    for key, value in event_dict.items():
        if key not in LEADING_KEYS:
            yield key, value


def render_logfmt(_logger: WrappedLogger, _method: str, event_dict: EventDict) -> str:
    """key=value pairs on one line, the leading fields first (final processor)."""
    return " ".join(
        f"{_KEY_CHARACTER_NOT_ALLOWED.sub('_', key) or '_'}={logfmt_value(value)}"
        for key, value in _ordered(event_dict)
    )


def render_json(_logger: WrappedLogger, _method: str, event_dict: EventDict) -> str:
    """One JSON object per line, the leading fields first (final processor)."""
    return str(_JSON(_logger, _method, dict(_ordered(event_dict))))


def formatter(log_format: LogFormat) -> structlog.stdlib.ProcessorFormatter:
    """The formatter of every record: the fields added, secrets redacted, one line."""
    renderer: Processor = render_json if log_format == "json" else render_logfmt
    return structlog.stdlib.ProcessorFormatter(
        processors=[
            structlog.contextvars.merge_contextvars,
            structlog.stdlib.add_log_level,
            structlog.stdlib.add_logger_name,
            structlog.processors.TimeStamper(fmt="iso", utc=True, key="ts"),
            redact_secrets,
            structlog.processors.format_exc_info,
            structlog.stdlib.ProcessorFormatter.remove_processors_meta,
            renderer,
        ],
    )


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


def configure_logging(level: str | None = None, log_format: LogFormat | None = None) -> None:
    """Log to stderr in the format and from the level of LogSettings unless given; chatty
    client libraries only from WARNING up."""
    settings = LogSettings()
    handler = _CurrentStderrHandler()
    handler.setFormatter(formatter(log_format or settings.format))
    root = logging.getLogger()
    root.handlers[:] = [handler]
    root.setLevel((level or settings.level).upper())
    for noisy in NOISY_LIBRARIES:
        logging.getLogger(noisy).setLevel(logging.WARNING)


def _route_structlog_to_stdlib() -> None:
    """structlog loggers hand their events to the stdlib logger of their name, whose
    handlers format them; a disabled level costs one check."""
    structlog.configure(
        processors=[
            structlog.stdlib.filter_by_level,
            structlog.contextvars.merge_contextvars,
            structlog.stdlib.PositionalArgumentsFormatter(),
            _hand_to_stdlib,
        ],
        logger_factory=structlog.stdlib.LoggerFactory(),
        wrapper_class=structlog.stdlib.BoundLogger,
        cache_logger_on_first_use=True,
    )


def _hand_to_stdlib(
    logger: WrappedLogger, method: str, event_dict: EventDict
) -> tuple[tuple[EventDict], dict[str, Any]]:
    """The event as the stdlib record's message, for the formatter; the exception, taken
    now while it is being handled, both in the event and on the record (caplog sees it)."""
    exc_info = event_dict.get("exc_info")
    if exc_info is True:
        exc_info = event_dict["exc_info"] = sys.exc_info()
    args, wrapped = structlog.stdlib.ProcessorFormatter.wrap_for_formatter(
        logger, method, event_dict
    )
    kwargs: dict[str, Any] = dict(wrapped)
    if exc_info:
        kwargs["exc_info"] = exc_info
    return args, kwargs


def bound_fields(record: logging.LogRecord) -> MutableMapping[str, Any]:
    """The fields of a record a structlog logger made (for tests reading caplog)."""
    return record.msg if isinstance(record.msg, dict) else {"event": record.getMessage()}


_route_structlog_to_stdlib()
