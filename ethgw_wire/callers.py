"""Who a task runs for: the API key that asked, as the gateway saw it.

The gateway stamps every request it forwards with the caller's key id and role (the
header below, made from the key it verified; a client's own header of that name is never
forwarded). The services copy it into the task, and the provider decides with it who owns
an account and who may use it. A task without a caller comes from inside the platform
(tools, tests, the benchmark's monolith), as every task did before keys owned accounts.
"""

from __future__ import annotations

from typing import Literal

from pydantic import BaseModel, ConfigDict, Field

CALLER_HEADER = "X-Ethgw-Caller"

CallerRole = Literal["user", "admin"]


class Caller(BaseModel):
    """An API key by its id (the first 12 hex digits of its hash) and its role."""

    model_config = ConfigDict(frozen=True, extra="forbid")

    key_id: str = Field(pattern=r"^[0-9a-f]{1,64}$")
    role: CallerRole

    @property
    def is_admin(self) -> bool:
        return self.role == "admin"

    def header_value(self) -> str:
        return f"{self.role}:{self.key_id}"

    @classmethod
    def from_header(cls, value: str) -> Caller:
        """The caller a header names; ValueError (pydantic's) when it is malformed."""
        role, _, key_id = value.partition(":")
        return cls.model_validate({"role": role, "key_id": key_id})


def may_use(caller: Caller | None, owner: str | None) -> bool:
    """Whether the caller may unlock, spend from, or list an account this owner created:
    its own key, any admin key, or the platform itself (no caller). An account without an
    owner (made before accounts had owners, or by the platform) is for admins only."""
    if caller is None or caller.is_admin:
        return True
    return owner is not None and owner == caller.key_id
