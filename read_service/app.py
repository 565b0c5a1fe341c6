"""The read service's FastAPI app."""

from __future__ import annotations

from fastapi import FastAPI

from consumer_service import create_service_app
from read_service.config import ReadServiceSettings
from read_service.routes import read_routers


def create_app(settings: ReadServiceSettings | None = None) -> FastAPI:
    settings = settings or ReadServiceSettings()
    return create_service_app("read", settings, read_routers(settings))
