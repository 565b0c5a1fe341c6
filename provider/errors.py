"""Failures of one task, each with a stable code the client can act on.

Declared in ethgw_wire.errors, where the services read each code's HTTP status; the
provider's modules import them from here.
"""

from __future__ import annotations

from ethgw_wire.errors import (
    AccountLockedError,
    InsufficientFundsError,
    InvalidParamsError,
    MethodNotAllowedError,
    NodeBehindError,
    NodeRefusedError,
    NodeUnavailableError,
    NotFoundError,
    PlatformNotReadyError,
    ReceiptTimeoutError,
    RevertedError,
    TaskError,
    UnknownAccountError,
    UnknownOperationTaskError,
    WrongPasswordError,
)

__all__ = [
    "AccountLockedError",
    "InsufficientFundsError",
    "InvalidParamsError",
    "MethodNotAllowedError",
    "NodeBehindError",
    "NodeRefusedError",
    "NodeUnavailableError",
    "NotFoundError",
    "PlatformNotReadyError",
    "ReceiptTimeoutError",
    "RevertedError",
    "TaskError",
    "UnknownAccountError",
    "UnknownOperationTaskError",
    "WrongPasswordError",
]
