"""The provider service: a FastAPI app whose lifespan runs the round loop.

Long-lived clients are made in the lifespan in dependency order and closed in
reverse (an AsyncExitStack); HTTP serves only health and metrics.
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
import time
from collections.abc import AsyncIterator, Mapping
from contextlib import AsyncExitStack, asynccontextmanager
from dataclasses import dataclass

from aiokafka import ConsumerRebalanceListener, TopicPartition
from fastapi import FastAPI, Response
from prometheus_client import CONTENT_TYPE_LATEST, generate_latest

from balancer import AdaptiveSettings, Calibration, TaskClass, make_strategy, task_memory_from_json
from ethgw_wire.artifacts import load_artifact
from ethgw_wire.kafka import kafka_consumer, kafka_producer
from ethgw_wire.node_reports import NodeReport
from ethgw_wire.sealing import GrantBox, TaskOpener
from ethgw_wire.settings import KafkaSettings, KeystoreSettings, ReadConsistencySettings
from ethgw_wire.topic_mirror import CompactedTable
from provider.accounts import AccountBook, KeystoreRecord
from provider.chain import NodeClient, NodeClients
from provider.config import ProviderSettings
from provider.dispatcher import Dispatcher
from provider.freshness import SeenMined
from provider.handlers import ADMIN, FAUCET, Handlers
from provider.journal_pruning import JournalPruner
from provider.nodes import NodeView
from provider.nonces import NonceTracker
from provider.read_cache import CachingClients, ReadCache
from provider.rebroadcast import Rebroadcaster
from provider.recycle_requests import RecycleRequests
from provider.spreading import Peer, TransactionSpreader
from provider.task_stream import KafkaResultSink, KafkaTaskSource, reply_producer
from provider.transactions import JournalRecord, TransactionSender, is_journaled
from provider.unlock_grants import UnlockGrant, UnlockGrants
from service_kit.keyfiles import ChainAccount, Scrypt, load_account

log = logging.getLogger("ethgw.provider")


@dataclass
class ProviderState:
    dispatcher: Dispatcher
    nodes: NodeView
    loop_task: asyncio.Task[None]


class _Rebalance(ConsumerRebalanceListener):  # type: ignore[misc]
    """Partitions going: finish their work first, then forget every account's nonce (its
    next owner may sign for it before this provider does again). Partitions coming:
    catch up the journal, the keystores and the unlock grants first, so a redelivered
    write is recognised, an account's nonces start above those the journal holds, and an
    account unlocked on another provider signs here; and watch the journal's unmined
    transactions, which their sender's previous owner no longer sends again."""

    def __init__(
        self,
        tables: list[
            CompactedTable[KeystoreRecord]
            | CompactedTable[JournalRecord]
            | CompactedTable[UnlockGrant]
        ],
        journal: CompactedTable[JournalRecord],
        nonces: NonceTracker,
        rebroadcaster: Rebroadcaster,
        drain_timeout_s: float,
    ) -> None:
        self.dispatcher: Dispatcher | None = None
        self._tables = tables
        self._journal = journal
        self._nonces = nonces
        self._rebroadcaster = rebroadcaster
        self._drain_timeout_s = drain_timeout_s

    async def on_partitions_revoked(self, revoked: set[TopicPartition]) -> None:
        if self.dispatcher is not None and revoked:
            await self.dispatcher.drain(revoked, self._drain_timeout_s)
            log.info("partitions revoked count=%d", len(revoked))
        self._nonces.forget_all()

    async def on_partitions_assigned(self, assigned: set[TopicPartition]) -> None:
        for table in self._tables:
            await table.sync()
        records = (record for _, record in self._journal.items())
        adopted = self._rebroadcaster.adopt(records, time.time())
        log.info("partitions assigned count=%d unmined_adopted=%d", len(assigned), adopted)


def _platform_signers(settings: ProviderSettings) -> dict[str, ChainAccount]:
    signers = {}
    for name in (ADMIN, FAUCET):
        account = load_account(settings.accounts_dir, name)
        if account is not None:
            signers[name] = account
        else:
            log.warning("platform signer missing name=%s dir=%s", name, settings.accounts_dir)
    return signers


def _routable_peers(nodes: NodeView, clients: NodeClients) -> list[Peer]:
    """The nodes a transaction's bytes may go to: the routable ones."""
    peers = []
    for state in nodes.states({}, time.time()):
        url = None if state.down else nodes.url(state.node_id)
        if url is not None:
            peers.append(Peer(url, clients.get(url)))
    return peers


def _healthiest_client(nodes: NodeView, clients: NodeClients) -> NodeClient | None:
    """The client of the routable node nearest the origin, None when none is routable."""
    node_id = nodes.nearest({}, time.time())
    url = None if node_id is None else nodes.url(node_id)
    return None if url is None else clients.get(url)


def _calibration(settings: ProviderSettings) -> Calibration:
    path = settings.calibration_file
    if path is not None and path.exists():
        calibration = Calibration.from_json(path.read_text())
    else:
        calibration = Calibration(settings.dis_avemin, settings.dis_avemax)
    # Logged so an operator (and the stack's test) can see which bounds the plans use.
    log.info(
        "calibration in use dis_avemin=%.4f dis_avemax=%.4f file=%s",
        calibration.dis_avemin,
        calibration.dis_avemax,
        path if path is not None and path.exists() else None,
    )
    return calibration


def task_memory_needs(settings: ProviderSettings) -> Mapping[TaskClass, float]:
    """Each class's memory need: the calibration file's measured figures, else the setting,
    else none (every class needs 0 MB)."""
    path = settings.calibration_file
    measured = None
    if path is not None and path.exists():
        measured = task_memory_from_json(path.read_text())
    table = measured if measured is not None else settings.task_memory_mb or {}
    source = "file" if measured is not None else "setting" if table else "none"
    figures = ",".join(f"{cls.value}:{table.get(cls, 0.0):g}" for cls in TaskClass)
    log.info("task memory in use mb=%s source=%s", figures, source)
    return table


@asynccontextmanager
async def lifespan(app: FastAPI) -> AsyncIterator[None]:
    settings = ProviderSettings()
    settings.validate_strategy()
    kafka = KafkaSettings()
    calibration = _calibration(settings)
    strategy = make_strategy(
        settings.strategy,
        dis_avemin=calibration.dis_avemin,
        dis_avemax=calibration.dis_avemax,
        delta=settings.delta,
        task_memory_mb=task_memory_needs(settings),
        # One pause setting for the provider's valve and lbh_adaptive's own.
        adaptive=AdaptiveSettings(max_pause_s=settings.max_pause_s),
    )
    async with AsyncExitStack() as stack:
        producer = await stack.enter_async_context(kafka_producer(kafka))
        keystores = CompactedTable(kafka, kafka.topic_accounts, KeystoreRecord, producer)
        journal = CompactedTable(kafka, kafka.topic_tx_journal, JournalRecord, producer)
        reports = CompactedTable(kafka, kafka.topic_node_states, NodeReport, producer)
        grant_table = CompactedTable(kafka, kafka.topic_unlock_grants, UnlockGrant, producer)
        for table in (keystores, journal, reports, grant_table):
            await table.start()
            stack.push_async_callback(table.stop)
        clients = NodeClients(settings.rpc_timeout_s)
        stack.push_async_callback(clients.close)
        recycle_requests = RecycleRequests(settings.manager_url, settings.recycle_cooldown_s)
        stack.push_async_callback(recycle_requests.close)
        grants = UnlockGrants(grant_table, GrantBox.of_folder())
        keystore = KeystoreSettings()
        # In a thread: it decrypts the platform signers' keystores (scrypt).
        accounts = await asyncio.to_thread(
            AccountBook,
            keystores,
            Scrypt(keystore.scrypt_n, keystore.slots()),
            _platform_signers(settings),
            settings.account_limits(),
            grants,
        )
        nodes = NodeView(reports, settings.node_stale_s)
        reads = ReadConsistencySettings()
        seen = SeenMined(reads.seen_mined_entries)
        cached = CachingClients(
            clients.get, ReadCache(reads.cache_entries, reads.safe_depth), seen, nodes
        )
        stack.push_async_callback(cached.close)
        rebroadcaster = Rebroadcaster(
            lambda: _healthiest_client(nodes, clients),
            after_s=settings.rebroadcast_after_s,
            interval_s=settings.rebroadcast_interval_s,
            max_watched=settings.rebroadcast_max_watched,
            max_age_s=settings.rebroadcast_max_age_s,
            journaled=lambda record: is_journaled(journal, record),
        )
        spreader = TransactionSpreader(
            lambda: _routable_peers(nodes, clients), settings.spread_max_in_flight
        )
        stack.push_async_callback(spreader.close)
        nonces = NonceTracker()
        sender = TransactionSender(
            accounts,
            nonces,
            journal,
            settings.gas_price_wei,
            settings.gas_margin,
            on_sent=lambda record: rebroadcaster.watch(record, time.time()),
            on_broadcast=spreader.spread,
        )
        handlers = Handlers(
            accounts,
            sender,
            load_artifact("PlatformToken"),
            settings.platform_file,
            settings.receipt_timeout_s,
            settings.funding_wei,
            settings.rpc_read_methods,
        )
        rebalance = _Rebalance(
            [keystores, journal, grant_table],
            journal,
            nonces,
            rebroadcaster,
            settings.receipt_timeout_s,
        )
        consumer = await stack.enter_async_context(
            kafka_consumer(
                kafka,
                kafka.topic_read,
                kafka.topic_write,
                group_id=settings.group_id,
                listener=rebalance,
                max_partition_fetch_bytes=1 << 20,
                session_timeout_ms=settings.session_timeout_ms,
                heartbeat_interval_ms=settings.heartbeat_interval_ms,
            )
        )
        replies = await stack.enter_async_context(reply_producer(kafka))
        dispatcher = Dispatcher(
            KafkaTaskSource(consumer),
            KafkaResultSink(producer, kafka.topic_results, replies, kafka.topic_replies_prefix),
            strategy,
            nodes,
            cached.get,
            handlers.table,
            JournalPruner(journal, unmined=rebroadcaster.watching),
            settings,
            recycle_requests,
            max_result_bytes=kafka.max_result_bytes,
            opener=TaskOpener.of_folder(),
            seen=seen,
            min_block_wait_s=reads.min_block_wait_s,
        )
        rebalance.dispatcher = dispatcher
        stop = asyncio.Event()
        loop_task = asyncio.create_task(dispatcher.run(stop), name="provider-rounds")
        rebroadcast_task = asyncio.create_task(rebroadcaster.run(stop), name="rebroadcast")
        pruning_task = asyncio.create_task(
            grants.run_pruning(stop, settings.grant_prune_interval_s), name="grant-pruning"
        )
        app.state.provider = ProviderState(dispatcher, nodes, loop_task)
        log.info(
            "provider started id=%s strategy=%s group=%s",
            settings.provider_id,
            settings.strategy,
            settings.group_id,
        )
        try:
            yield
        finally:
            stop.set()
            with contextlib.suppress(asyncio.CancelledError):
                await asyncio.wait_for(loop_task, settings.receipt_timeout_s + 5)
            with contextlib.suppress(asyncio.CancelledError, TimeoutError):
                await asyncio.wait_for(rebroadcast_task, settings.rpc_timeout_s)
            with contextlib.suppress(asyncio.CancelledError, TimeoutError):
                await asyncio.wait_for(pruning_task, settings.rpc_timeout_s)
            log.info("provider stopped id=%s", settings.provider_id)


def create_app() -> FastAPI:
    app = FastAPI(title="ethgw provider", lifespan=lifespan)

    @app.get("/healthz")
    async def healthz() -> dict[str, str]:
        return {"status": "ok"}

    @app.get("/readyz")
    async def readyz(response: Response) -> dict[str, object]:
        state: ProviderState = app.state.provider
        routable = [s.node_id for s in state.nodes.states({}, time.time()) if not s.down]
        ready = not state.loop_task.done() and bool(routable)
        response.status_code = 200 if ready else 503
        return {
            "ready": ready,
            "routable_nodes": routable,
            "held": state.dispatcher.held,
            "running": state.dispatcher.running,
        }

    @app.get("/metrics")
    async def prometheus() -> Response:
        return Response(generate_latest(), media_type=CONTENT_TYPE_LATEST)

    return app
