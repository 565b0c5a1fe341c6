"""`python -m write_service`: run one instance of the write service."""

from __future__ import annotations

import uvicorn

from common.logs import configure_logging
from write_service.app import create_app
from write_service.config import WriteServiceSettings


def main() -> None:
    configure_logging()
    settings = WriteServiceSettings()
    uvicorn.run(
        create_app(settings),
        host=settings.http_host,
        port=settings.http_port,
        log_config=None,
        access_log=False,
    )


if __name__ == "__main__":
    main()
