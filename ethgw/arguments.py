"""Value types for the command's options: a bad value is refused by argparse, with the
option's name and the reason, before anything starts."""

from __future__ import annotations

import argparse
from collections.abc import Callable
from typing import Annotated, Any, cast

from pydantic import BaseModel, TypeAdapter, ValidationError


def bounded(
    kind: Callable[[str], int | float], low: float, high: float | None = None
) -> Callable[[str], Any]:
    """An argparse type: a number of `kind` within [low, high] (no upper bound: None)."""

    def parse(text: str) -> int | float:
        try:
            value = kind(text)
        except ValueError:
            raise argparse.ArgumentTypeError(f"{text!r} is not {_a(kind)}") from None
        if value < low or (high is not None and value > high):
            allowed = f">= {low:g}" if high is None else f"from {low:g} to {high:g}"
            raise argparse.ArgumentTypeError(f"{text} is out of range: {allowed}")
        return value

    return parse


def _a(kind: Callable[[str], int | float]) -> str:
    return "an integer" if kind is int else "a number"


def like_setting(settings: type[BaseModel], field: str) -> Callable[[str], Any]:
    """An argparse type that accepts what the setting `field` of `settings` accepts, so an
    option that overrides a setting keeps the bounds declared on it (one declaration)."""
    declared = settings.model_fields[field]
    adapter: TypeAdapter[Any] = TypeAdapter(cast(Any, Annotated[declared.annotation, declared]))

    def parse(text: str) -> Any:
        try:
            return adapter.validate_python(text)
        except ValidationError as error:
            reason = error.errors()[0]["msg"].removeprefix("Input ")
            raise argparse.ArgumentTypeError(f"{text!r} {reason}") from None

    return parse


__all__ = ["bounded", "like_setting"]
