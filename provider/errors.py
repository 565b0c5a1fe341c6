"""Failures of one task, each with a stable code the client can act on."""

from __future__ import annotations

from ethgw_wire.messages import ErrorInfo


class TaskError(Exception):
    """A task could not be executed; `code` is stable, `message` is for people."""

    code = "task_failed"
    retriable = False

    def __init__(self, message: str, *, field: str | None = None) -> None:
        super().__init__(message)
        self.message = message
        self.field = field

    def info(self) -> ErrorInfo:
        return ErrorInfo(
            code=self.code, message=self.message, field=self.field, retriable=self.retriable
        )


class InvalidParamsError(TaskError):
    """The task's parameters do not match the operation's schema."""

    code = "invalid_params"


class UnknownOperationTaskError(TaskError):
    """The task names no operation of the platform."""

    code = "unknown_operation"


class NotFoundError(TaskError):
    """What the task asks for (transaction, block, project, account) does not exist."""

    code = "not_found"


class AccountLockedError(TaskError):
    """The signing account is not unlocked on this provider (unlock it, then retry)."""

    code = "account_locked"
    retriable = True


class WrongPasswordError(TaskError):
    """The password does not decrypt the account's keystore."""

    code = "wrong_password"


class UnknownAccountError(TaskError):
    """No keystore of the platform holds this address."""

    code = "unknown_account"


class RevertedError(TaskError):
    """The transaction would revert (or did): the contract refused it."""

    code = "reverted"


class InsufficientFundsError(TaskError):
    """The signer cannot pay for the transaction."""

    code = "insufficient_funds"


class NodeUnavailableError(TaskError):
    """No node could execute the task (all attempts failed to reach a node)."""

    code = "node_unavailable"
    retriable = True


class NodeBehindError(TaskError):
    """The chosen node's state is behind the chain (it lacks a contract): try another node."""

    code = "node_behind"
    retriable = True


class ReceiptTimeoutError(TaskError):
    """The transaction was sent but no receipt came within the timeout."""

    code = "receipt_timeout"
    retriable = True


class MethodNotAllowedError(TaskError):
    """A JSON-RPC method that the pass-through does not allow."""

    code = "method_not_allowed"


class PlatformNotReadyError(TaskError):
    """The platform token is not deployed yet (no platform record)."""

    code = "platform_not_ready"
    retriable = True
