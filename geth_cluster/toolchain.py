"""Where `make bootstrap` puts the external tools the stack runs."""

from __future__ import annotations

from pathlib import Path

from service_kit.paths import tools_dir


def geth_binary() -> Path:
    return tools_dir() / "bin" / "geth"


def kafka_libs() -> Path:
    return tools_dir() / "kafka"
