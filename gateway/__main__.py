"""`python -m gateway`: run the API gateway (settings from ETHGW_GATEWAY_* variables)."""

from __future__ import annotations

import uvicorn

from common.logs import configure_logging
from common.ports import ensure_port_free
from gateway.app import create_app
from gateway.config import GatewaySettings


def main() -> None:
    configure_logging()
    settings = GatewaySettings()
    ensure_port_free(settings.port, "ETHGW_GATEWAY_PORT", settings.host)
    uvicorn.run(
        create_app(settings),
        host=settings.host,
        port=settings.port,
        log_config=None,
        access_log=False,  # the gateway logs refusals and failures itself, with request ids
        # Clients keep connections open between calls (Locust, web3): longer than the 5 s default.
        timeout_keep_alive=30,
    )


if __name__ == "__main__":
    main()
