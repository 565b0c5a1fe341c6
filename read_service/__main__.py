"""`python -m read_service`: run one instance of the read service."""

from __future__ import annotations

from read_service.app import create_app
from read_service.config import ReadServiceSettings
from service_kit.serving import serve


def main() -> None:
    settings = ReadServiceSettings()
    serve(create_app(settings), settings.http_host, settings.http_port)


if __name__ == "__main__":
    main()
