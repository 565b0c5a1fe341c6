"""The API gateway: routing to service instances, breakers, API keys, limits, /rpc,
operator endpoints. `python -m gateway` runs it."""

from gateway.app import create_app
from gateway.config import GatewaySettings
from gateway.keys import Role, admin_key_path, create_key, ensure_admin_key, read_admin_key

__all__ = [
    "GatewaySettings",
    "Role",
    "admin_key_path",
    "create_app",
    "create_key",
    "ensure_admin_key",
    "read_admin_key",
]
