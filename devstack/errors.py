"""The local stack's failures, importable without the stack (the CLI names them before it
loads anything heavy)."""

from __future__ import annotations


class KafkaBrokerError(Exception):
    """Base class of every failure of the local Kafka broker's lifecycle."""


class StackError(RuntimeError):
    """A part of the stack exited or never became healthy; the message says where its log is."""
