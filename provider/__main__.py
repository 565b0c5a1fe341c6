"""`python -m provider`: run one provider."""

from __future__ import annotations

import uvicorn

from common.logs import configure_logging
from provider.app import create_app
from provider.config import ProviderSettings


def main() -> None:
    configure_logging()
    settings = ProviderSettings()
    uvicorn.run(
        create_app(),
        host=settings.http_host,
        port=settings.http_port,
        log_config=None,
        access_log=False,
    )


if __name__ == "__main__":
    main()
