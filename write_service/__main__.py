"""`python -m write_service`: run one instance of the write service."""

from __future__ import annotations

from service_kit.serving import serve
from write_service.app import create_app
from write_service.config import WriteServiceSettings


def main() -> None:
    settings = WriteServiceSettings()
    serve(create_app(settings), settings.http_host, settings.http_port)


if __name__ == "__main__":
    main()
