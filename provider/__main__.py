"""`python -m provider`: run one provider."""

from __future__ import annotations

from provider.app import create_app
from provider.config import ProviderSettings
from service_kit.serving import serve


def main() -> None:
    settings = ProviderSettings()
    serve(create_app(), settings.http_host, settings.http_port)


if __name__ == "__main__":
    main()
