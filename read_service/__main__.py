"""`python -m read_service`: run one instance of the read service."""

from __future__ import annotations

import uvicorn

from common.logs import configure_logging
from read_service.app import create_app
from read_service.config import ReadServiceSettings


def main() -> None:
    configure_logging()
    settings = ReadServiceSettings()
    uvicorn.run(
        create_app(settings),
        host=settings.http_host,
        port=settings.http_port,
        log_config=None,
        access_log=False,
    )


if __name__ == "__main__":
    main()
