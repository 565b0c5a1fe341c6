"""The compose runtime's own logic above the Docker SDK, on a stand-in client (the real
engine is tests/docker/test_compose_runtime.py's): log tails and the state watcher."""

from __future__ import annotations

import asyncio
import threading
import time
from types import SimpleNamespace
from typing import Any

import requests

from ethgw_wire.settings import ClusterSettings
from geth_cluster.layout import pool_specs
from geth_cluster.runtimes.compose import ComposeRuntime
from geth_cluster.runtimes.docker import LABEL_NODE


class Containers:
    """`client.containers`: one node-1 container; `list` fails while `failing` is set."""

    def __init__(self) -> None:
        self.failing = threading.Event()
        self.node = SimpleNamespace(
            name="stack-node-1",
            labels={LABEL_NODE: "node-1", "ethgw.stack": "compose"},
            attrs={"State": {"Running": True, "Pid": 4242}},
            logs=lambda tail: "geth läuft\n".encode(),
        )

    def list(self, **_: Any) -> list[SimpleNamespace]:
        if self.failing.is_set():
            self.failing.clear()
            raise requests.exceptions.ConnectionError("engine gone")
        return [self.node]


def runtime(containers: Containers) -> ComposeRuntime:
    client = SimpleNamespace(containers=containers, close=lambda: None)
    return ComposeRuntime(ClusterSettings(nodes=1), lambda: client, refresh_s=0.01)


def node_1() -> Any:
    return next(s for s in pool_specs(ClusterSettings(nodes=1)) if s.name == "node-1")


def test_log_tail_is_the_containers_text() -> None:
    """The last lines come back decoded as UTF-8."""
    assert runtime(Containers()).log_tail(node_1()) == "geth läuft\n"


def test_watcher_outlives_an_engine_error() -> None:
    """After a connection error from the engine the watcher keeps reading states."""
    containers = Containers()
    containers.failing.set()
    adopted = runtime(containers)
    try:
        assert adopted.pid(node_1()) is None  # starts the watcher; nothing read yet
        deadline = time.monotonic() + 30.0
        while adopted.pid(node_1()) is None and time.monotonic() < deadline:
            time.sleep(0.01)  # the watcher is a thread of its own
        assert adopted.pid(node_1()) == 4242, "the watcher stopped after the error"
    finally:
        asyncio.run(adopted.close())
