"""The read service's FastAPI app."""

from __future__ import annotations

from fastapi import FastAPI

from consumer_service.app import create_task_service
from read_service.config import ReadServiceSettings


def create_app(settings: ReadServiceSettings | None = None) -> FastAPI:
    return create_task_service("read", settings or ReadServiceSettings())
