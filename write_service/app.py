"""The write service's FastAPI app."""

from __future__ import annotations

from fastapi import FastAPI

from consumer_service.app import create_task_service
from write_service.config import WriteServiceSettings


def create_app(settings: WriteServiceSettings | None = None) -> FastAPI:
    return create_task_service("write", settings or WriteServiceSettings())
