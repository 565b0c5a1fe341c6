"""The thesis's control group: one process serving the platform's REST API by
calling a single Geth node directly, with no Kafka, no gateway and no scheduler.

It serves the same routes (ethgw_wire.http_api.ENDPOINTS) with the same envelope and runs
the same operation code as a provider (provider.handlers), so the benchmark
compares architectures, not implementations. What a provider keeps in compacted
topics (keystores, the signed-transaction journal) stays in this process's memory.

    ETHGW_MONOLITH_RPC_URL=http://127.0.0.1:8546 python -m loadtests.monolith
"""

from __future__ import annotations

import asyncio
import logging
import uuid
from collections.abc import AsyncIterator
from contextlib import asynccontextmanager
from dataclasses import dataclass
from pathlib import Path

from fastapi import FastAPI, Request, Response
from fastapi.responses import JSONResponse
from pydantic import Field
from pydantic_settings import BaseSettings, SettingsConfigDict

from consumer_service import add_error_handlers, request_id_of
from ethgw_wire.artifacts import load_artifact
from ethgw_wire.errors import TaskError
from ethgw_wire.http_api import (
    ENDPOINTS,
    REQUEST_ID_HEADER,
    Endpoint,
    Envelope,
    build_router,
    envelope_content,
    error_envelope,
    http_status_of,
)
from ethgw_wire.operations import ADMIN_SIGNER, FAUCET_SIGNER, RPC_READ_METHODS, Params
from ethgw_wire.settings import KeystoreSettings
from ethgw_wire.topic_mirror import MemoryTable
from provider.accounts import AccountBook, KeystoreRecord
from provider.chain import NodeClients, NodeUnreachableError
from provider.handlers import Handlers, Job
from provider.nonces import NonceTracker
from provider.transactions import JournalRecord, TransactionSender
from service_kit.keyfiles import ChainAccount, Scrypt, load_account
from service_kit.paths import default_state_dir
from service_kit.serving import serve

log = logging.getLogger("ethgw.monolith")

NODE_ID = "node-1"


class MonolithSettings(BaseSettings):
    """The single node it calls, where it listens, and the provider's execution knobs."""

    model_config = SettingsConfigDict(env_prefix="ETHGW_MONOLITH_", extra="ignore")

    rpc_url: str = "http://127.0.0.1:8546"
    http_host: str = "127.0.0.1"
    http_port: int = Field(default=8090, ge=1, le=65535)
    # As many operations at once as one provider runs (ProviderSettings.concurrency).
    concurrency: int = Field(default=64, ge=1)
    rpc_timeout_s: float = 10.0
    receipt_timeout_s: float = 60.0
    funding_wei: int = 10**18
    gas_price_wei: int | None = None
    gas_margin: float = 1.25
    accounts_dir: Path = Field(default_factory=lambda: default_state_dir() / "cluster" / "accounts")
    platform_file: Path = Field(default_factory=lambda: default_state_dir() / "platform.json")


@dataclass
class Monolith:
    handlers: Handlers
    clients: NodeClients
    settings: MonolithSettings
    slots: asyncio.Semaphore

    async def run(self, endpoint: Endpoint, params: Params, request_id: str) -> Envelope:
        task_id = uuid.uuid4().hex
        job = Job(task_id, params, self.clients.get(self.settings.rpc_url), NODE_ID)
        try:
            async with self.slots:
                data = await self.handlers.table[endpoint.operation_name](job)
        except TaskError as exc:
            return error_envelope(
                http_status_of(exc.code), exc.code, exc.message, exc.field, request_id, task_id
            )
        except NodeUnreachableError as exc:
            reason = f"the node did not answer: {exc.kind}"
            return error_envelope(503, "node_unavailable", reason, None, request_id, task_id, True)
        except Exception as exc:
            log.exception("operation crashed operation=%s", endpoint.operation_name)
            reason = f"{type(exc).__name__}: {exc}"
            return error_envelope(500, "internal", reason, None, request_id, task_id)
        return Envelope(status=200, message="ok", data=data, task_id=task_id, request_id=request_id)


def _platform_signers(accounts_dir: Path) -> dict[str, ChainAccount]:
    signers = {}
    for name in (ADMIN_SIGNER, FAUCET_SIGNER):
        account = load_account(accounts_dir, name)
        if account is not None:
            signers[name] = account
    return signers


def build_monolith(settings: MonolithSettings) -> Monolith:
    keystores: MemoryTable[KeystoreRecord] = MemoryTable("accounts")
    journal: MemoryTable[JournalRecord] = MemoryTable("journal")
    keystore = KeystoreSettings()
    accounts = AccountBook(
        keystores,
        Scrypt(keystore.scrypt_n, keystore.slots()),
        _platform_signers(settings.accounts_dir),
    )
    sender = TransactionSender(
        accounts, NonceTracker(), journal, settings.gas_price_wei, settings.gas_margin
    )
    handlers = Handlers(
        accounts,
        sender,
        load_artifact("PlatformToken"),
        settings.platform_file,
        settings.receipt_timeout_s,
        settings.funding_wei,
        RPC_READ_METHODS,
    )
    clients = NodeClients(settings.rpc_timeout_s)
    return Monolith(handlers, clients, settings, asyncio.Semaphore(settings.concurrency))


def create_app(settings: MonolithSettings) -> FastAPI:
    @asynccontextmanager
    async def lifespan(app: FastAPI) -> AsyncIterator[None]:
        monolith = build_monolith(settings)
        app.state.monolith = monolith
        log.info("monolith started rpc=%s port=%d", settings.rpc_url, settings.http_port)
        try:
            yield
        finally:
            await monolith.clients.close()

    app = FastAPI(title="ethgw monolith baseline", lifespan=lifespan)

    async def route(endpoint: Endpoint, params: Params, request: Request) -> Response:
        monolith: Monolith = request.app.state.monolith
        request_id = request_id_of(request)
        envelope = await monolith.run(endpoint, params, request_id)
        return JSONResponse(
            envelope_content(envelope),
            status_code=envelope.status,
            headers={REQUEST_ID_HEADER: request_id},
        )

    app.include_router(build_router(ENDPOINTS, route))

    @app.get("/healthz")
    async def healthz() -> dict[str, str]:
        return {"status": "ok"}

    add_error_handlers(app)  # the services' 422 and 404 envelopes
    return app


def main() -> None:
    settings = MonolithSettings()
    serve(create_app(settings), settings.http_host, settings.http_port)


if __name__ == "__main__":
    main()
