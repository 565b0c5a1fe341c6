"""The write service's FastAPI app."""

from __future__ import annotations

from fastapi import FastAPI

from consumer_service import create_service_app
from write_service.config import WriteServiceSettings
from write_service.routes import write_routers


def create_app(settings: WriteServiceSettings | None = None) -> FastAPI:
    return create_service_app("write", settings or WriteServiceSettings(), write_routers())
