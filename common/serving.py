"""Running one service's FastAPI app: the same for every `python -m <service>`."""

from __future__ import annotations

import uvicorn
from fastapi import FastAPI

from common.logs import configure_logging

# How long an idle client connection stays open. uvicorn's default, 5 s, is shorter than
# the keep-alive of the clients' pools (the gateway's: gateway.upstream's
# UPSTREAM_KEEP_ALIVE_S), so a pooled connection could be closed by the service under a
# request just sent on it (ServerDisconnectedError).
KEEP_ALIVE_S = 75


def serve(app: FastAPI, host: str, port: int) -> None:
    """Structured logs (ours, not uvicorn's), no access log: metrics count requests."""
    configure_logging()
    uvicorn.run(
        app,
        host=host,
        port=port,
        log_config=None,
        access_log=False,
        timeout_keep_alive=KEEP_ALIVE_S,
    )
