"""Running one service's FastAPI app: the same for every `python -m <service>`."""

from __future__ import annotations

import asyncio
import logging
import resource
import socket
import time
from dataclasses import dataclass

import uvicorn
from fastapi import FastAPI
from starlette.types import ASGIApp, Message, Receive, Scope, Send

from service_kit.logs import configure_logging
from service_kit.paths import keep_state_private

# How long an idle client connection stays open. uvicorn's default, 5 s, is shorter than
# the keep-alive of the clients' pools (the gateway's: gateway.upstream's
# UPSTREAM_KEEP_ALIVE_S), so a pooled connection could be closed by the service under a
# request just sent on it (ServerDisconnectedError).
KEEP_ALIVE_S = 75

# On SIGTERM, how long kept-alive connections are still served (each answer then closes
# its connection) before the idle ones are cut. uvicorn alone cuts them at once, and a
# request a client had just sent on one is lost without an answer (RemoteProtocolError).
DRAIN_S = 1.0

# Open files a service may hold: the gateway alone keeps up to 2,048 upstream connections
# (gateway.config) besides its clients', past the usual soft limit of 1,024.
OPEN_FILES_WANTED = 65_536

EVENT_LOOP = "uvloop"
HTTP_PARSER = "httptools"

log = logging.getLogger("ethgw.serving")


@dataclass
class Drain:
    """Shared by the server and the app: set once the server stops accepting."""

    started: bool = False


# Where CloseWhileDraining puts the Drain in each request's scope: a long answer (an event
# stream) ends itself once the drain starts, or the server would wait for it forever.
DRAIN_SCOPE_KEY = "ethgw.drain"


class CloseWhileDraining:
    """ASGI wrapper: while draining, every answer says `Connection: close`.

    The client then opens a new connection for its next call, which is refused (nothing
    sent, safe to retry) instead of being cut under a request.
    """

    def __init__(self, app: ASGIApp, drain: Drain) -> None:
        self._app = app
        self._drain = drain

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        if scope["type"] != "http":
            await self._app(scope, receive, send)
            return
        scope[DRAIN_SCOPE_KEY] = self._drain

        async def send_closing(message: Message) -> None:
            if message["type"] == "http.response.start" and self._drain.started:
                headers = [(k, v) for k, v in message.get("headers", []) if k != b"connection"]
                message = {**message, "headers": [*headers, (b"connection", b"close")]}
            await send(message)

        await self._app(scope, receive, send_closing)


class DrainingServer(uvicorn.Server):
    """uvicorn's server with a drain before its shutdown: listeners closed first."""

    def __init__(self, config: uvicorn.Config, drain: Drain, drain_s: float = DRAIN_S) -> None:
        super().__init__(config)
        self._drain = drain
        self._drain_s = drain_s

    @property
    def draining(self) -> bool:
        return self._drain.started

    async def shutdown(self, sockets: list[socket.socket] | None = None) -> None:
        for server in self.servers:
            server.close()
        for sock in sockets or []:
            sock.close()
        self._drain.started = True
        connections = self.server_state.connections
        log.info("draining connections=%d seconds=%.1f", len(connections), self._drain_s)
        deadline = time.monotonic() + self._drain_s
        # uvicorn's set of connections has no event to wait on: poll it.
        while connections and time.monotonic() < deadline and not self.force_exit:  # noqa: ASYNC110
            await asyncio.sleep(0.05)
        await super().shutdown(sockets)


def draining_server(
    app: ASGIApp, host: str, port: int, keep_alive_s: int = KEEP_ALIVE_S
) -> DrainingServer:
    """The server `serve` runs, for callers that run it on their own loop (tests)."""
    drain = Drain()
    config = uvicorn.Config(
        CloseWhileDraining(app, drain),
        host=host,
        port=port,
        log_config=None,
        access_log=False,  # metrics count requests; failures are logged with request ids
        timeout_keep_alive=keep_alive_s,
        # Named, not "auto": a missing wheel fails the start instead of falling back to the
        # pure-Python loop and parser without a word. (Measured: about 0.5 ms off a read's
        # p50 through the pipeline, within the run-to-run spread.)
        loop=EVENT_LOOP,
        http=HTTP_PARSER,
    )
    return DrainingServer(config, drain)


def serve(app: FastAPI, host: str, port: int, keep_alive_s: int = KEEP_ALIVE_S) -> None:
    """Structured logs (ours, not uvicorn's), no access log, a drain on SIGTERM; what the
    service writes is its user's only."""
    keep_state_private()
    configure_logging()
    soft = raise_open_files_limit()
    log.info("open files limit=%s", "unlimited" if soft == resource.RLIM_INFINITY else soft)
    draining_server(app, host, port, keep_alive_s).run()


def raise_open_files_limit(wanted: int = OPEN_FILES_WANTED) -> int:
    """Raise this process's soft limit of open files towards `wanted`, as far as the hard
    limit allows (what Go programs, geth among them, do at start); never lower it. Returns
    the soft limit now in force."""
    soft, hard = resource.getrlimit(resource.RLIMIT_NOFILE)
    target = wanted if hard == resource.RLIM_INFINITY else min(wanted, hard)
    if soft != resource.RLIM_INFINITY and soft < target:
        resource.setrlimit(resource.RLIMIT_NOFILE, (target, hard))
        return target
    return soft
