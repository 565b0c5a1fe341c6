"""How a load-test client judges an answer of the gateway: its envelope, not just the status."""

from __future__ import annotations

from typing import Any


def outcome(status: int, body: Any) -> tuple[dict[str, Any] | None, str | None]:
    """(the envelope's data, None) on a 200 envelope, else (None, "HTTP <status> <code>")."""
    if status == 200 and isinstance(body, dict) and body.get("status") == 200:
        data = body.get("data")
        return (data if isinstance(data, dict) else {"value": data}), None
    error = body.get("error") if isinstance(body, dict) else None
    code = error.get("code") if isinstance(error, dict) else ""
    return None, f"HTTP {status} {code}".strip()
