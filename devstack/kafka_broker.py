"""Lifecycle of the local Apache Kafka broker: one KRaft node that is broker and controller.

Public API (``ethgw kafka up/down`` and the test fixtures call these)::

    from ethgw_wire.settings import KafkaSettings
    from devstack.kafka_broker import KafkaBroker

    broker = KafkaBroker(KafkaSettings())
    broker.start()                       # checks, formats storage once, spawns, waits to serve
    asyncio.run(broker.ensure_topics())  # creates the settings' topics; returns the new names
    broker.is_running()                  # True while the pid file names a live broker of ours
    broker.pid()                         # that pid, or None
    broker.wait_ready(timeout_s=60)      # start() calls it; public for callers that attach
    broker.stop()                        # SIGTERM, SIGKILL after a bound; from any process

``start()`` is a no-op when the broker of this state folder already runs, and
``stop()`` is a no-op when it does not, so both are safe to repeat. The broker
runs in its own process group and outlives the Python process that started it
until ``stop()`` is called (from any process: the pid is in the state folder).

Files in ``settings.state_dir``:

- ``server.properties``: written on every start from the settings;
- ``cluster.id``: the KRaft cluster id, chosen on the first start;
- ``data/``: ``log.dirs`` and the metadata log, formatted on the first start
  only, so messages and committed offsets survive restarts;
- ``broker.log``: the broker's warnings and errors and the JVM's own output;
- ``broker.pid``: the running broker's pid.

Prerequisites: ``java`` on PATH and the jars in ``<tools_dir>/kafka``
(``scripts/bootstrap_kafka.sh``).

Errors are subclasses of ``KafkaBrokerError``: ``JavaNotFoundError``,
``KafkaJarsMissingError``, ``PortInUseError``, ``StorageFormatError``,
``BrokerExitedError``, ``BrokerStartTimeoutError``, ``BrokerStopError``,
``BrokerUnreachableError``, ``TopicCreationError``. ``PortInUseError`` is also a
``service_kit.ports.PortInUseError``, so one ``except`` covers a taken port of Kafka and
of the Geth nodes.
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
import os
import shutil
import signal
import socket
import struct
import subprocess
import time
from collections.abc import Iterator, Mapping
from pathlib import Path
from typing import Any

import psutil
from aiokafka.admin import AIOKafkaAdminClient, NewTopic
from aiokafka.errors import KafkaError, for_code

from ethgw_wire.settings import KafkaSettings
from service_kit import ports
from service_kit.paths import REPO_ROOT, tools_dir

__all__ = [
    "BrokerExitedError",
    "BrokerStartTimeoutError",
    "BrokerStopError",
    "BrokerUnreachableError",
    "JavaNotFoundError",
    "KafkaBroker",
    "KafkaBrokerError",
    "KafkaJarsMissingError",
    "PortInUseError",
    "StorageFormatError",
    "TopicCreationError",
]

log = logging.getLogger("ethgw.kafka")

KAFKA_VERSION = "3.9.1"
LOG4J_CONFIG = REPO_ROOT / "build" / "kafka" / "log4j.properties"
INSTALL_HINT = "apt-get install -y openjdk-17-jdk-headless maven"
BOOTSTRAP_HINT = "run scripts/bootstrap_kafka.sh (or make bootstrap)"

# A single combined node: the id only has to agree with controller.quorum.voters.
NODE_ID = 1
# Kafka error code for a topic that already exists (a concurrent ensure_topics won the race).
_TOPIC_ALREADY_EXISTS = 36
_LOG_TAIL_LINES = 30


class KafkaBrokerError(Exception):
    """Base class of every failure of the local Kafka broker's lifecycle."""


class JavaNotFoundError(KafkaBrokerError):
    """No java executable to run the broker with."""


class KafkaJarsMissingError(KafkaBrokerError):
    """The Kafka jars have not been fetched into the tools folder."""


class PortInUseError(KafkaBrokerError, ports.PortInUseError):
    """A port the broker is configured to listen on is already taken."""


class StorageFormatError(KafkaBrokerError):
    """Formatting the KRaft storage on first start failed."""


class BrokerExitedError(KafkaBrokerError):
    """The broker process exited before it started serving."""


class BrokerStartTimeoutError(KafkaBrokerError):
    """The broker did not start serving within the start timeout."""


class BrokerStopError(KafkaBrokerError):
    """The broker process survived SIGTERM and SIGKILL."""


class BrokerUnreachableError(KafkaBrokerError):
    """No Kafka broker answers at the settings' bootstrap address."""


class TopicCreationError(KafkaBrokerError):
    """The broker refused to create a topic, or its partitions got no leader in time."""


class KafkaBroker:
    """One local KRaft broker (broker and controller in one JVM) described by KafkaSettings."""

    def __init__(
        self,
        settings: KafkaSettings,
        *,
        tools: Path | None = None,
        log4j_config: Path = LOG4J_CONFIG,
    ) -> None:
        self.settings = settings
        self.jars_dir = (tools if tools is not None else tools_dir()) / "kafka"
        self.log4j_config = log4j_config
        self.state_dir = settings.state_dir
        self.data_dir = self.state_dir / "data"
        self.config_file = self.state_dir / "server.properties"
        self.cluster_id_file = self.state_dir / "cluster.id"
        self.log_file = self.state_dir / "broker.log"
        self.pid_file = self.state_dir / "broker.pid"
        # Only set in the process that spawned the broker; used to reap it (no zombie).
        self._proc: subprocess.Popen[bytes] | None = None

    # ------------------------------------------------------------------ lifecycle

    def start(self, *, timeout_s: float = 60.0) -> None:
        """Start the broker unless it already runs, and return once it serves requests."""
        if self.is_running():
            log.info("kafka already running pid=%s port=%d", self.pid(), self.settings.port)
            self.wait_ready(timeout_s=timeout_s)
            return
        java = self._java()
        self._check_jars()
        self._check_ports_free()
        self.state_dir.mkdir(parents=True, exist_ok=True)
        self._write_config()
        self._format_storage_once(java)

        started = time.monotonic()
        cmd = self._command(java)
        with self.log_file.open("ab") as out:
            self._proc = subprocess.Popen(
                cmd,
                stdin=subprocess.DEVNULL,
                stdout=out,
                stderr=subprocess.STDOUT,
                cwd=self.state_dir,
                # Its own process group: a Ctrl-C meant for `make up` must not kill the
                # broker mid-write; `stop()` shuts it down in order instead.
                start_new_session=True,
            )
        self.pid_file.write_text(f"{self._proc.pid}\n")
        log.info(
            "kafka starting pid=%d port=%d controller_port=%d heap_mb=%d state_dir=%s",
            self._proc.pid,
            self.settings.port,
            self.settings.controller_port,
            self.settings.heap_mb,
            self.state_dir,
        )
        try:
            self.wait_ready(timeout_s=timeout_s)
        except BrokerStartTimeoutError:
            # A half-started broker would hold the ports and the log dir lock.
            self.stop()
            raise
        log.info(
            "kafka ready pid=%d bootstrap=%s elapsed_s=%.1f",
            self._proc.pid,
            self.settings.bootstrap_servers,
            time.monotonic() - started,
        )

    def wait_ready(self, *, timeout_s: float = 60.0) -> None:
        """Block until the broker answers an ApiVersions request on its client port."""
        deadline = time.monotonic() + timeout_s
        while True:
            if self.pid() is None:
                self.pid_file.unlink(missing_ok=True)
                raise BrokerExitedError(
                    f"the Kafka broker exited before it served on port {self.settings.port}"
                    f"{self._exit_detail()}; last lines of {self.log_file}:\n{self._log_tail()}"
                )
            # The broker accepts client requests only once it has caught up with the
            # metadata log and is unfenced, so an answer means topics can be created.
            if _answers_api_versions(self.settings.host, self.settings.port, timeout_s=1.0):
                return
            if time.monotonic() >= deadline:
                raise BrokerStartTimeoutError(
                    f"the Kafka broker did not serve on port {self.settings.port} within "
                    f"{timeout_s:.0f} s; last lines of {self.log_file}:\n{self._log_tail()}"
                )
            time.sleep(0.2)

    def stop(self, *, timeout_s: float = 30.0) -> bool:
        """Stop the broker (SIGTERM, then SIGKILL after timeout_s); False if none was running."""
        pid = self.pid()
        if pid is None:
            self._reap_own()
            self.pid_file.unlink(missing_ok=True)
            log.info("kafka not running state_dir=%s", self.state_dir)
            return False
        started = time.monotonic()
        # SIGTERM runs the broker's shutdown hook: it closes the logs cleanly, so the
        # next start skips log recovery.
        _signal_group(pid, signal.SIGTERM)
        if not self._wait_exit(pid, timeout_s):
            log.warning(
                "kafka ignored SIGTERM pid=%d timeout_s=%.0f; sending SIGKILL", pid, timeout_s
            )
            _signal_group(pid, signal.SIGKILL)
            if not self._wait_exit(pid, 10.0):
                raise BrokerStopError(f"the Kafka broker (pid {pid}) survived SIGKILL")
        self.pid_file.unlink(missing_ok=True)
        self._reap_own()
        log.info("kafka stopped pid=%d elapsed_s=%.1f", pid, time.monotonic() - started)
        return True

    def _reap_own(self) -> None:
        """Collect the child this object spawned, so no Popen outlives its process."""
        if self._proc is None:
            return
        if self._proc.poll() is None:
            self._proc.kill()
        with contextlib.suppress(subprocess.TimeoutExpired):
            self._proc.wait(timeout=10)
        self._proc = None

    def is_running(self) -> bool:
        """Whether the pid file names a live broker process of this state folder."""
        return self.pid() is not None

    def exit_code(self) -> int | None:
        """How the broker this object started ended (-9: SIGKILL); None while it runs, and
        for a broker another process started (its exit status is not ours to read)."""
        return None if self._proc is None else self._proc.poll()

    def pid(self) -> int | None:
        """The pid of this state folder's running broker, or None."""
        if self._proc is not None:
            if self._proc.poll() is not None:
                return None  # our own child exited (poll() also reaped it)
            # Our own living child: no command-line check, which can race the java
            # launcher re-executing itself (its cmdline is briefly empty).
            return int(self._proc.pid)
        try:
            pid = int(self.pid_file.read_text().strip())
            proc = psutil.Process(pid)
            cmdline = proc.cmdline()
            alive = proc.status() != psutil.STATUS_ZOMBIE
        except (OSError, ValueError, psutil.Error):
            return None
        # Guards against a recycled pid: the process must be a broker of this config file.
        if alive and "kafka.Kafka" in cmdline and str(self.config_file) in cmdline:
            return pid
        return None

    # --------------------------------------------------------------------- topics

    async def ensure_topics(self, *, timeout_s: float = 30.0) -> list[str]:
        """Create every topic the settings name that does not exist yet; return the new names.

        Compacted topics get ``cleanup.policy=compact``. An existing topic is left
        as it is (changing partition counts would move keys between partitions);
        a count that differs from the settings is logged as a warning. The broker's
        consumer-offsets topic is created too (by asking for a group coordinator), so
        the first consumer group joins at once instead of retrying while it appears.
        """
        wanted = self.settings.topic_partitions()
        compacted = self.settings.compacted_topics()
        admin = AIOKafkaAdminClient(
            bootstrap_servers=self.settings.bootstrap_servers,
            client_id="ethgw-kafka-admin",
            request_timeout_ms=int(timeout_s * 1000),
        )
        try:
            await admin.start()
        except KafkaError as exc:
            raise BrokerUnreachableError(
                f"no Kafka broker answers at {self.settings.bootstrap_servers} "
                f"(start it with `ethgw kafka up`): {exc}"
            ) from None
        try:
            existing = await _partition_counts(admin)
            for name, count in wanted.items():
                if name in existing and existing[name] != count:
                    log.warning(
                        "kafka topic partition count differs topic=%s existing=%d configured=%d",
                        name,
                        existing[name],
                        count,
                    )
            new = [
                NewTopic(
                    name,
                    num_partitions=count,
                    replication_factor=1,
                    topic_configs={"cleanup.policy": "compact"} if name in compacted else {},
                )
                for name, count in wanted.items()
                if name not in existing
            ]
            created: list[str] = []
            if new:
                response = await admin.create_topics(new, timeout_ms=int(timeout_s * 1000))
                for topic, code, *detail in response.topic_errors:
                    if code not in (0, _TOPIC_ALREADY_EXISTS):
                        message = detail[0] if detail and detail[0] else for_code(code).__name__
                        raise TopicCreationError(f"creating Kafka topic {topic} failed: {message}")
                created = [t.name for t in new]
                await _wait_for_leaders(admin, {t.name: t.num_partitions for t in new}, timeout_s)
                for name in created:
                    log.info(
                        "kafka topic created topic=%s partitions=%d compacted=%s",
                        name,
                        wanted[name],
                        name in compacted,
                    )
            if "__consumer_offsets" not in existing:
                await _warm_group_coordinator(admin, timeout_s)
        finally:
            await admin.close()
        return created

    # ------------------------------------------------------------------- helpers

    def _java(self) -> str:
        java = shutil.which("java")
        if java is None:
            raise JavaNotFoundError(
                f"java not found on PATH (Kafka {KAFKA_VERSION} needs a JDK >= 11); "
                f"install with: {INSTALL_HINT}"
            )
        return java

    def _check_jars(self) -> None:
        if not (self.jars_dir / f"kafka_2.13-{KAFKA_VERSION}.jar").is_file():
            raise KafkaJarsMissingError(
                f"Kafka {KAFKA_VERSION} jars not found in {self.jars_dir}; {BOOTSTRAP_HINT}"
            )

    def _check_ports_free(self) -> None:
        for field in ("port", "controller_port"):
            port: int = getattr(self.settings, field)
            try:
                ports.ensure_port_free(port, _env_name(self.settings, field), self.settings.host)
            except ports.PortInUseError as exc:
                # Re-raised as the Kafka subclass: callers catch either base.
                raise PortInUseError(str(exc)) from None

    def _write_config(self) -> None:
        s = self.settings
        props: dict[str, str | int] = {
            "process.roles": "broker,controller",
            "node.id": NODE_ID,
            # Static voters (not KIP-853 bootstrap servers): one node that never changes.
            "controller.quorum.voters": f"{NODE_ID}@{s.host}:{s.controller_port}",
            "listeners": f"PLAINTEXT://{s.host}:{s.port},CONTROLLER://{s.host}:{s.controller_port}",
            "advertised.listeners": f"PLAINTEXT://{s.host}:{s.port}",
            "controller.listener.names": "CONTROLLER",
            "inter.broker.listener.name": "PLAINTEXT",
            "listener.security.protocol.map": "CONTROLLER:PLAINTEXT,PLAINTEXT:PLAINTEXT",
            "log.dirs": str(self.data_dir),
            # One broker: the internal topics' defaults (replication 3) could never be met.
            "offsets.topic.replication.factor": 1,
            "transaction.state.log.replication.factor": 1,
            "transaction.state.log.min.isr": 1,
            "default.replication.factor": 1,
            "min.insync.replicas": 1,
            # Said, not left to the default: the providers bound their results below it.
            "message.max.bytes": s.max_message_bytes,
            # Fewer internal partitions than the default 50: faster first group join on a dev box.
            "offsets.topic.num.partitions": 10,
            "transaction.state.log.num.partitions": 10,
            # The default 3 s delay before the first rebalance is pure wait in tests and dev.
            "group.initial.rebalance.delay.ms": 0,
            # Topics come from ensure_topics(); a typo in a topic name must fail, not create one.
            "auto.create.topics.enable": "false",
            "num.partitions": 1,
            # Two cores shared with Geth nodes: the defaults (3 network and 8 I/O threads)
            # oversubscribe them.
            "num.network.threads": 2,
            "num.io.threads": 4,
            "num.recovery.threads.per.data.dir": 1,
            "background.threads": 4,
            # The cleaner's default 128 MiB dedupe buffer is a quarter of the default heap.
            "log.cleaner.dedupe.buffer.size": 16 * 1024 * 1024,
            # Small segments and a week of retention keep a dev state folder small.
            "log.segment.bytes": 64 * 1024 * 1024,
            "log.retention.hours": 168,
        }
        text = "# Written by devstack/kafka_broker.py on every start; edit the settings instead.\n"
        text += "".join(f"{key}={value}\n" for key, value in props.items())
        self.config_file.write_text(text)

    def _format_storage_once(self, java: str) -> None:
        if (self.data_dir / "meta.properties").is_file():
            return
        # Keep the cluster id so a wiped data folder is re-formatted into the same cluster.
        if self.cluster_id_file.is_file():
            cluster_id = self.cluster_id_file.read_text().strip()
        else:
            cluster_id = self._storage_tool(java, "random-uuid").strip()
            self.cluster_id_file.write_text(f"{cluster_id}\n")
        self._storage_tool(
            java, "format", "--ignore-formatted", "-t", cluster_id, "-c", str(self.config_file)
        )
        log.info("kafka storage formatted cluster_id=%s data_dir=%s", cluster_id, self.data_dir)

    def _storage_tool(self, java: str, *args: str) -> str:
        cmd = [
            java,
            *self._jvm_logging_flags(),
            "-cp",
            self._classpath(),
            "kafka.tools.StorageTool",
        ]
        result = subprocess.run(
            [*cmd, *args], capture_output=True, text=True, timeout=60, check=False
        )
        if result.returncode != 0:
            output = (result.stdout + result.stderr).strip()
            raise StorageFormatError(
                f"kafka-storage {args[0]} failed (exit {result.returncode}): {output}"
            )
        return result.stdout

    def _command(self, java: str) -> list[str]:
        heap = self.settings.heap_mb
        return [
            java,
            f"-Xmx{heap}m",
            # A small initial heap: the JVM's default (1/64 of RAM) would reserve more than
            # a dev broker ever uses, next to Geth nodes measured against memory budgets.
            f"-Xms{min(heap, 128)}m",
            # The flags kafka-run-class.sh uses: short pauses keep request latency even.
            "-XX:+UseG1GC",
            "-XX:MaxGCPauseMillis=20",
            "-XX:InitiatingHeapOccupancyPercent=35",
            # An out-of-memory broker should die visibly (is_running() turns False), not limp.
            "-XX:+ExitOnOutOfMemoryError",
            "-Djava.awt.headless=true",
            *self._jvm_logging_flags(),
            "-cp",
            self._classpath(),
            "kafka.Kafka",
            str(self.config_file),
        ]

    def _jvm_logging_flags(self) -> list[str]:
        return [
            f"-Dlog4j.configuration=file:{self.log4j_config}",
            f"-Dethgw.kafka.log={self.log_file}",
        ]

    def _classpath(self) -> str:
        # The JVM expands a trailing '*' itself (jars only), so no shell is needed.
        return f"{self.jars_dir}/*"

    def _wait_exit(self, pid: int, timeout_s: float) -> bool:
        if self._proc is not None and self._proc.pid == pid:
            try:
                self._proc.wait(timeout=timeout_s)
            except subprocess.TimeoutExpired:
                return False
            return True
        # Started by another process, which may still be alive and not reap the broker:
        # a zombie has exited too (psutil's own wait() would wait for the reaping).
        deadline = time.monotonic() + timeout_s
        while time.monotonic() < deadline:
            try:
                if psutil.Process(pid).status() == psutil.STATUS_ZOMBIE:
                    return True
            except psutil.NoSuchProcess:
                return True
            time.sleep(0.1)
        return False

    def _exit_detail(self) -> str:
        if self._proc is not None and self._proc.returncode is not None:
            return f" (exit code {self._proc.returncode})"
        return ""

    def _log_tail(self) -> str:
        try:
            lines = self.log_file.read_text(errors="replace").splitlines()
        except OSError:
            return "(no log)"
        return "\n".join(lines[-_LOG_TAIL_LINES:]) or "(empty log)"


def _env_name(settings: KafkaSettings, field: str) -> str:
    """The environment variable that sets one field, e.g. ETHGW_KAFKA_PORT."""
    prefix = str(settings.model_config.get("env_prefix", ""))
    return f"{prefix}{field}".upper()


def _signal_group(pid: int, sig: signal.Signals) -> None:
    with contextlib.suppress(ProcessLookupError):
        try:
            os.killpg(pid, sig)
        except ProcessLookupError:
            # Not a group leader (started by hand, not by start()): signal the process.
            os.kill(pid, sig)


def _answers_api_versions(host: str, port: int, *, timeout_s: float) -> bool:
    """Send a Kafka ApiVersions v0 request and say whether it got a success answer."""
    correlation_id = 0x0E7E  # any value; echoed back by the broker
    client_id = b"ethgw-ready-probe"
    # Request header v1: api_key=18 (ApiVersions), api_version=0, correlation_id, client_id.
    body = struct.pack(">hhih", 18, 0, correlation_id, len(client_id)) + client_id
    try:
        with socket.create_connection((host, port), timeout=timeout_s) as conn:
            conn.sendall(struct.pack(">i", len(body)) + body)
            size = struct.unpack(">i", _recv_exact(conn, 4))[0]
            reply = _recv_exact(conn, size)
    except (OSError, struct.error):
        return False
    got_id, error_code = struct.unpack(">ih", reply[:6])
    return bool(got_id == correlation_id and error_code == 0)


def _recv_exact(conn: socket.socket, n: int) -> bytes:
    chunks = bytearray()
    while len(chunks) < n:
        chunk = conn.recv(n - len(chunks))
        if not chunk:
            raise ConnectionError("connection closed mid-reply")
        chunks.extend(chunk)
    return bytes(chunks)


async def _partition_counts(admin: AIOKafkaAdminClient) -> dict[str, int]:
    """Partition count of every existing topic, internal ones included."""
    topics = await admin.describe_topics()
    return {t["topic"]: len(t["partitions"]) for t in topics if t["error_code"] == 0}


async def _wait_for_leaders(
    admin: AIOKafkaAdminClient, wanted: Mapping[str, int], timeout_s: float
) -> None:
    """Return once every partition of the given topics has a leader.

    CreateTopics answers when the controller has committed the topic; the broker
    applies it a moment later, and a producer that came first would see
    UNKNOWN_TOPIC_OR_PARTITION.
    """
    deadline = time.monotonic() + timeout_s
    while True:
        topics = await admin.describe_topics(list(wanted))
        missing = sorted(_topics_without_leaders(topics, wanted))
        if not missing:
            return
        if time.monotonic() >= deadline:
            raise TopicCreationError(
                f"Kafka topics without a leader after {timeout_s:.0f} s: {', '.join(missing)}"
            )
        await asyncio.sleep(0.1)


async def _warm_group_coordinator(admin: AIOKafkaAdminClient, timeout_s: float) -> None:
    """Ask for a group coordinator until there is one; the first ask creates __consumer_offsets."""
    deadline = time.monotonic() + timeout_s
    while True:
        try:
            await admin.find_coordinator("ethgw-warm-up")
        except KafkaError as exc:
            # COORDINATOR_NOT_AVAILABLE while the offsets topic's partitions get leaders.
            if time.monotonic() >= deadline:
                raise TopicCreationError(
                    f"Kafka group coordinator not available after {timeout_s:.0f} s: {exc}"
                ) from None
            await asyncio.sleep(0.1)
        else:
            log.info("kafka group coordinator ready")
            return


def _topics_without_leaders(
    topics: list[dict[str, Any]], wanted: Mapping[str, int]
) -> Iterator[str]:
    by_name = {t["topic"]: t for t in topics if t["error_code"] == 0}
    for name, count in wanted.items():
        partitions = by_name[name]["partitions"] if name in by_name else []
        if len(partitions) < count or any(p["leader"] < 0 for p in partitions):
            yield name
