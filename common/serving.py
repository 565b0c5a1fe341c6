"""Running one service's FastAPI app: the same for every `python -m <service>`."""

from __future__ import annotations

import uvicorn
from fastapi import FastAPI

from common.logs import configure_logging


def serve(app: FastAPI, host: str, port: int) -> None:
    """Structured logs (ours, not uvicorn's), no access log: metrics count requests."""
    configure_logging()
    uvicorn.run(app, host=host, port=port, log_config=None, access_log=False)
