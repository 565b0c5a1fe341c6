"""Every way a task can fail, declared once: one class per failure.

Each class carries the stable code a client acts on, the HTTP status the services
answer it with, its JSON-RPC error code on /rpc, and whether retrying the same request
may succeed. The provider
raises these; the services only read the declarations (`http_status_of`).
"""

from __future__ import annotations

from typing import Any, ClassVar

from ethgw_wire.messages import ErrorInfo

UNKNOWN_CODE_STATUS = 500
SERVER_ERROR_RPC_CODE = -32000  # JSON-RPC 2.0: an implementation-defined server error
LIMIT_EXCEEDED_RPC_CODE = -32005  # EIP-1474: the request exceeds a defined limit


class TaskError(Exception):
    """A task could not be executed; `code` is stable, `message` is for people."""

    code: ClassVar[str] = "task_failed"
    http_status: ClassVar[int] = 500
    rpc_code: ClassVar[int] = SERVER_ERROR_RPC_CODE
    retriable: ClassVar[bool] = False

    def __init__(self, message: str, *, field: str | None = None) -> None:
        super().__init__(message)
        self.message = message
        self.field = field

    def __init_subclass__(cls, **kwargs: Any) -> None:
        super().__init_subclass__(**kwargs)
        if "code" in cls.__dict__:
            _declare(cls)

    def info(self) -> ErrorInfo:
        return ErrorInfo(
            code=self.code, message=self.message, field=self.field, retriable=self.retriable
        )


# Every declared error by its code; filled as the classes below are defined.
ERRORS: dict[str, type[TaskError]] = {TaskError.code: TaskError}


def _declare(error: type[TaskError]) -> None:
    known = ERRORS.get(error.code)
    if known is not None:
        raise TypeError(f"{error.__name__} reuses the code {error.code!r} of {known.__name__}")
    ERRORS[error.code] = error


def http_status_of(code: str) -> int:
    """The HTTP status a failed task's code answers with (an unknown code is a 500)."""
    error = ERRORS.get(code)
    return UNKNOWN_CODE_STATUS if error is None else error.http_status


def rpc_code_of(code: str) -> int:
    """The JSON-RPC error code a failed task's code answers with on /rpc."""
    error = ERRORS.get(code)
    return SERVER_ERROR_RPC_CODE if error is None else error.rpc_code


class InvalidParamsError(TaskError):
    """The task's parameters do not match the operation's schema."""

    code = "invalid_params"
    http_status = 422


class UnknownOperationTaskError(TaskError):
    """The task names no operation of the platform."""

    code = "unknown_operation"
    http_status = 404


class NotFoundError(TaskError):
    """What the task asks for (transaction, block, project, account) does not exist."""

    code = "not_found"
    http_status = 404


class AccountLockedError(TaskError):
    """The signing account is not unlocked on this provider (unlock it, then retry)."""

    code = "account_locked"
    http_status = 409
    retriable = True


class WrongPasswordError(TaskError):
    """The password does not decrypt the account's keystore."""

    code = "wrong_password"
    http_status = 403


class UnknownAccountError(TaskError):
    """No keystore of the platform holds this address."""

    code = "unknown_account"
    http_status = 404


class NotAccountOwnerError(TaskError):
    """The account belongs to another API key: only its creator or an admin key may
    unlock it, spend from it or see it listed."""

    code = "not_account_owner"
    http_status = 403


class AccountQuotaError(TaskError):
    """The API key has made as many accounts as it may (ETHGW_PROVIDER_ACCOUNTS_PER_KEY)."""

    code = "account_quota_exceeded"
    http_status = 403


class UnlockThrottledError(TaskError):
    """Too many failed unlocks of this account, or by this API key, lately: no password
    is tried until the oldest failure is out of the window."""

    code = "unlock_throttled"
    http_status = 429
    retriable = True


class RevertedError(TaskError):
    """The transaction would revert (or did): the contract refused it."""

    code = "reverted"
    http_status = 409


class InsufficientFundsError(TaskError):
    """The signer cannot pay for the transaction."""

    code = "insufficient_funds"
    http_status = 409


class NodeUnavailableError(TaskError):
    """No node could execute the task (all attempts failed to reach a node)."""

    code = "node_unavailable"
    http_status = 503
    retriable = True


class NodeBehindError(TaskError):
    """The chosen node's state is behind the chain (it lacks a contract): try another node."""

    code = "node_behind"
    http_status = 503
    retriable = True


class NodeRefusedError(TaskError):
    """The node answered the call with a JSON-RPC error of its own."""

    code = "node_refused"
    http_status = 502


class ReceiptTimeoutError(TaskError):
    """The transaction was sent but no receipt came within the timeout."""

    code = "receipt_timeout"
    http_status = 504
    retriable = True


class MethodNotAllowedError(TaskError):
    """A JSON-RPC method that the pass-through does not allow."""

    code = "method_not_allowed"
    http_status = 403


class ResultTooLargeError(TaskError):
    """The result is larger than a result may be on Kafka: ask for less (a narrower block
    range, a call that returns less)."""

    code = "result_too_large"
    http_status = 422
    rpc_code = LIMIT_EXCEEDED_RPC_CODE


class PlatformNotReadyError(TaskError):
    """The platform token is not deployed yet (no platform record)."""

    code = "platform_not_ready"
    http_status = 503
    retriable = True


# What any operation may answer, whatever it does: bad input, no node, a node's refusal.
COMMON_ERRORS: tuple[type[TaskError], ...] = (
    InvalidParamsError,
    NodeUnavailableError,
    NodeRefusedError,
    TaskError,
)
