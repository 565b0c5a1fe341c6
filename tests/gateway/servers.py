"""Real HTTP servers for the gateway tests: uvicorn in a thread, fake service instances
that speak the services' contract, and a fake cluster manager."""

from __future__ import annotations

import asyncio
import socket
import threading
import time
from dataclasses import dataclass, field
from typing import Any

import uvicorn
from fastapi import FastAPI, HTTPException, Request, Response
from fastapi.responses import JSONResponse, PlainTextResponse

from ethgw_wire.http_api import REQUEST_ID_HEADER
from ethgw_wire.registration import INSTANCE_FAULT_HEADER


class ServerThread:
    """One uvicorn server on a socket bound up front (no race for the port), run in its
    own thread and event loop."""

    def __init__(self, app: Any) -> None:
        self.socket = socket.socket(socket.AF_INET, socket.SOCK_STREAM)
        self.socket.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
        self.socket.bind(("127.0.0.1", 0))
        self.port: int = self.socket.getsockname()[1]
        self.url = f"http://127.0.0.1:{self.port}"
        config = uvicorn.Config(
            app,
            log_config=None,
            access_log=False,
            lifespan="on",
            ws="none",
            timeout_graceful_shutdown=2,
        )
        self.server = uvicorn.Server(config)
        self.thread = threading.Thread(
            target=self.server.run, kwargs={"sockets": [self.socket]}, daemon=True
        )

    def start(self, timeout_s: float = 15.0) -> None:
        self.thread.start()
        deadline = time.monotonic() + timeout_s
        while not self.server.started:
            if not self.thread.is_alive() or time.monotonic() > deadline:
                raise RuntimeError(f"server on port {self.port} did not start")
            time.sleep(0.01)

    def stop(self) -> None:
        self.server.should_exit = True
        self.thread.join(timeout=10)
        self.socket.close()


UNKNOWN_TASK = "0" * 32  # the task id the fake services do not know


@dataclass
class Seen:
    method: str
    path: str
    query: str
    body: bytes
    headers: dict[str, str]


@dataclass
class FakeService:
    """A read or write service instance: answers every /api/v1 route with an envelope
    naming itself, /api/v1/rpc with a JSON-RPC response, and records what it received.

    `mode`: "ok"; "crash" (a plain-text 500, as an unhandled exception gave);
    "hang" (answers after `hang_s`); "conflict" (a 409 envelope, a task that failed);
    "internal" (the services' catch-all: a 500 envelope, or -32603 on /rpc);
    "rpc_invalid" (-32602 on /rpc); "kafka_down" (a 503 marked as the instance's fault).
    """

    kind: str
    instance_id: str
    mode: str = "ok"
    hang_s: float = 3.0
    seen: list[Seen] = field(default_factory=list)
    server: ServerThread | None = None

    @property
    def url(self) -> str:
        assert self.server is not None
        return self.server.url

    def reset(self) -> None:
        self.mode = "ok"
        self.seen.clear()

    def app(self) -> FastAPI:
        app = FastAPI()

        async def record(request: Request) -> Response | None:
            self.seen.append(
                Seen(
                    request.method,
                    request.url.path,
                    request.url.query,
                    await request.body(),
                    dict(request.headers),
                )
            )
            if self.mode == "crash":
                return PlainTextResponse("Internal Server Error", status_code=500)
            if self.mode == "hang":
                await asyncio.sleep(self.hang_s)
            if self.mode == "internal" and request.url.path != "/api/v1/rpc":
                internal = {"code": "internal", "reason": "internal error of the service"}
                return JSONResponse({"status": 500, "message": "internal", "error": internal}, 500)
            if self.mode == "kafka_down":
                fault = {"code": "kafka_unavailable", "retriable": True}
                body = {"status": 503, "message": "no Kafka", "error": fault}
                return JSONResponse(body, 503, headers={INSTANCE_FAULT_HEADER: "kafka"})
            return None

        def envelope(request: Request, status: int, data: Any, **extra: Any) -> JSONResponse:
            request_id = request.headers.get(REQUEST_ID_HEADER)
            body = {"status": status, "message": "ok", "data": data, "request_id": request_id}
            return JSONResponse(
                {**body, **extra}, status_code=status, headers={REQUEST_ID_HEADER: request_id or ""}
            )

        @app.post("/api/v1/rpc")
        async def rpc(request: Request) -> Response:
            refused = await record(request)
            if refused is not None:
                return refused
            call = await request.json()
            if self.mode in ("internal", "rpc_invalid"):
                code, status = (-32603, 500) if self.mode == "internal" else (-32602, 200)
                error = {"code": code, "message": f"{self.mode} at {self.instance_id}"}
                return JSONResponse({"jsonrpc": "2.0", "id": None, "error": error}, status)
            result = {"instance": self.instance_id, "method": call["method"]}
            return JSONResponse({"jsonrpc": "2.0", "id": call.get("id"), "result": result})

        @app.get("/api/v1/tasks/{task_id}")
        async def task(task_id: str, request: Request) -> Response:
            refused = await record(request)
            if refused is not None:
                return refused
            if task_id == UNKNOWN_TASK:
                return envelope(request, 404, None)
            return envelope(request, 202, {"instance": self.instance_id}, task_id=task_id)

        @app.api_route("/api/v1/{path:path}", methods=["GET", "POST"])
        async def api(path: str, request: Request) -> Response:
            refused = await record(request)
            if refused is not None:
                return refused
            if self.mode == "conflict":
                error = {"code": "reverted", "reason": "the contract refused it"}
                return envelope(request, 409, None, error=error)
            data = {"instance": self.instance_id, "path": path, "query": request.url.query}
            return envelope(request, 200, data)

        return app


SNAPSHOT: dict[str, Any] = {
    "nodes": [
        {
            "node_id": "node-1",
            "lifecycle": "up",
            "zone": "I",
            "distance": 0.12,
            "memory": 0.1,
            "cpu": 0.06,
            "memory_mb": 102.4,
            "free_memory_mb": 921.6,
            "block": 120,
            "lag": 0,
            "down_reason": None,
            "cordoned": False,
            "restarts": 0,
            "samples": 40,
            "sampled_at": 1.0,
        },
        {
            "node_id": "node-2",
            "lifecycle": "cordoned",
            "zone": "DOWN",
            "distance": 0.7,
            "memory": 0.6,
            "cpu": 0.36,
            "memory_mb": 614.4,
            "free_memory_mb": 409.6,
            "block": 119,
            "lag": 1,
            "down_reason": None,
            "cordoned": True,
            "restarts": 1,
            "samples": 40,
            "sampled_at": 1.0,
            "in_flight": 3,
        },
    ],
    "lbh": 0.42,
    "paused": False,
    "dis_avemin": 0.1,
    "dis_avemax": 1.0,
    "dis_ave": 0.55,
    "head": 120,
    "ticks": 40,
    "tick_seconds": 0.01,
    "taken_at": 2.0,
}


@dataclass
class FakeManager:
    """The cluster manager's operator API as geth_cluster.api serves it: nodes, cordon,
    uncordon, restart; no mining routes (so the gateway answers 501 for them)."""

    actions: list[str] = field(default_factory=list)
    server: ServerThread | None = None

    @property
    def url(self) -> str:
        assert self.server is not None
        return self.server.url

    def app(self) -> FastAPI:
        app = FastAPI()

        @app.get("/nodes")
        async def nodes() -> dict[str, Any]:
            return SNAPSHOT

        @app.post("/nodes/{node_id}/{action}")
        async def act(node_id: str, action: str) -> dict[str, Any]:
            if action not in ("cordon", "uncordon", "restart"):
                raise HTTPException(404, "Not Found")
            if node_id not in ("node-1", "node-2"):
                raise HTTPException(404, f"no pool node named {node_id!r}")
            self.actions.append(f"{action} {node_id}")
            return {"node_id": node_id, "lifecycle": "cordoned" if action == "cordon" else "up"}

        return app
