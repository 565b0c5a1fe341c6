"""`python -m gateway`: run the API gateway (settings from ETHGW_GATEWAY_* variables)."""

from __future__ import annotations

from gateway.app import create_app
from gateway.config import GatewaySettings
from service_kit.ports import ensure_port_free
from service_kit.serving import serve


def main() -> None:
    settings = GatewaySettings()
    ensure_port_free(settings.port, "ETHGW_GATEWAY_PORT", settings.host)
    # Clients keep connections open between calls (Locust, web3): longer than the 5 s default.
    serve(create_app(settings), settings.host, settings.port, keep_alive_s=30)


if __name__ == "__main__":
    main()
