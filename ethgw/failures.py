"""What counts as the user's mistake, or the machine's, and the one line that tells it.

These end the command with that line on stderr and exit 1. Anything else is a bug of
ours and keeps its traceback."""

from __future__ import annotations

import sys
from typing import Any

from pydantic import ValidationError
from pydantic_settings import BaseSettings

from devstack.errors import KafkaBrokerError, StackError
from gateway.keys import KeyFileError
from geth_cluster.errors import ClusterError
from service_kit.ports import PortInUseError


class UserError(Exception):
    """A mistake a command found in what it was asked to do; the message says which."""


# OSError: a state folder that cannot be written, a file that cannot be read.
USER_ERRORS: tuple[type[Exception], ...] = (
    UserError,
    ClusterError,
    PortInUseError,
    KafkaBrokerError,
    KeyFileError,
    StackError,
    ValidationError,
    OSError,
)


def report(error: Exception) -> None:
    """Print `error` to stderr, ending with one line that says what went wrong. A message
    of several lines (a tool's output) comes first, indented, then its first line."""
    summary, *details = _message(error).splitlines()
    for line in details:
        print(f"  {line}", file=sys.stderr)
    print(f"ethgw: {summary.rstrip(':')}", file=sys.stderr)


def _message(error: Exception) -> str:
    if isinstance(error, ValidationError):
        return settings_problem(error)
    return str(error).strip() or type(error).__name__


def settings_problem(error: ValidationError) -> str:
    """One line naming each refused setting by its environment variable, with its value and
    the reason, e.g. `setting ETHGW_CLUSTER_NODES='abc': should be a valid integer`."""
    settings = _settings_class(error.title)
    problems = []
    for item in error.errors():
        name = str(item["loc"][0]) if item["loc"] else ""
        variable = _variable(settings, name) if settings is not None else name
        reason = item["msg"].removeprefix("Input ")
        problems.append(f"setting {variable}={item.get('input')!r}: {reason}")
    return "; ".join(problems)


def _settings_class(title: str) -> type[BaseSettings] | None:
    """The settings class that raised a ValidationError titled `title` (its class name)."""
    pending: list[type[BaseSettings]] = [BaseSettings]
    while pending:
        cls = pending.pop()
        if cls.__name__ == title:
            return cls
        pending.extend(cls.__subclasses__())
    return None


def _variable(settings: type[BaseSettings], name: str) -> str:
    """The environment variable a field of `settings` is read from."""
    field = settings.model_fields.get(name)
    aliases: Any = getattr(field.validation_alias, "choices", ()) if field is not None else ()
    for alias in aliases:
        if isinstance(alias, str) and alias.startswith("ETHGW_"):
            return alias
    prefix = str(settings.model_config.get("env_prefix", ""))
    return f"{prefix}{name}".upper()


__all__ = ["USER_ERRORS", "UserError", "report", "settings_problem"]
