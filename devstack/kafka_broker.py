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

- ``server.properties``: written on every start from the settings (0600: it holds the
  admin principal's password for the broker's own connections);
- ``credentials/``: the admin and platform principals' passwords, random, 0600, made on the
  first start (the settings' ``admin_password_file`` and ``password_file`` may move them);
- ``sasl.formatted``: says the storage was formatted with those principals' SCRAM credentials;
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
``BrokerUnreachableError``, ``TopicCreationError``, ``ForeignBrokerError``,
``UnsecuredStorageError``. ``PortInUseError`` is also a
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
from concurrent.futures import ThreadPoolExecutor
from pathlib import Path
from typing import Any

import psutil
from aiokafka.admin import AIOKafkaAdminClient, NewTopic
from aiokafka.errors import KafkaError, for_code
from aiokafka.protocol.admin import CreateAclsRequest

from devstack.errors import KafkaBrokerError
from ethgw_wire.kafka import (
    SASL_MECHANISM,
    KafkaCredentialsError,
    check_credentials,
    client_options,
)
from ethgw_wire.settings import KafkaSettings
from service_kit import ports
from service_kit.keyfiles import ensure_random_secret, write_private
from service_kit.paths import REPO_ROOT, tools_dir

__all__ = [
    "BrokerExitedError",
    "BrokerStartTimeoutError",
    "BrokerStopError",
    "BrokerUnreachableError",
    "ForeignBrokerError",
    "JavaNotFoundError",
    "KafkaBroker",
    "KafkaBrokerError",
    "KafkaJarsMissingError",
    "PortInUseError",
    "StorageFormatError",
    "TopicCreationError",
    "UnsecuredStorageError",
]

log = logging.getLogger("ethgw.kafka")

KAFKA_VERSION = "3.9.1"
LOG4J_CONFIG = REPO_ROOT / "build" / "kafka" / "log4j.properties"
INSTALL_HINT = "apt-get install -y openjdk-17-jdk-headless maven"
BOOTSTRAP_HINT = "run scripts/bootstrap_kafka.sh (or make bootstrap)"

STORAGE_TOOL = "kafka.tools.StorageTool"
# A single combined node: the id only has to agree with controller.quorum.voters.
NODE_ID = 1
# Kafka error code for a topic that already exists (a concurrent ensure_topics won the race).
_TOPIC_ALREADY_EXISTS = 36
_LOG_TAIL_LINES = 30

# Kafka's ACL codes (org.apache.kafka.common.acl and .resource).
_TOPIC, _GROUP = 2, 3
_PREFIXED = 4
_READ, _WRITE, _CREATE, _DELETE, _DESCRIBE, _DESCRIBE_CONFIGS = 3, 4, 5, 6, 8, 10
_ALLOW = 3
# What the platform principal may do, on the topics and groups that start with the settings'
# resource_prefix: produce and consume, create and delete the instances' reply topics, read
# the topics' partitions and configs, and commit and read its groups' offsets.
PLATFORM_ACLS: tuple[tuple[int, tuple[int, ...]], ...] = (
    (_TOPIC, (_READ, _WRITE, _CREATE, _DELETE, _DESCRIBE, _DESCRIBE_CONFIGS)),
    (_GROUP, (_READ, _DESCRIBE)),
)


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


class ForeignBrokerError(KafkaBrokerError):
    """A broker answers on the port but refuses this stack's credentials: another stack's."""


class UnsecuredStorageError(KafkaBrokerError):
    """The storage was formatted before the broker had authentication (no SCRAM users)."""


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
        self.sasl_stamp = self.state_dir / "sasl.formatted"
        # Only set in the process that spawned the broker; used to reap it (no zombie).
        self._proc: subprocess.Popen[bytes] | None = None

    # ------------------------------------------------------------------ lifecycle

    def start(self, *, timeout_s: float = 60.0) -> None:
        """Start the broker unless it already runs, and return once it serves requests."""
        if self.is_running():
            log.info("kafka already running pid=%s port=%d", self.pid(), self.settings.port)
            self.wait_ready(timeout_s=timeout_s)
            self._check_ours()
            return
        java = self._java()
        self._check_jars()
        self._check_ports_free()
        self.state_dir.mkdir(parents=True, exist_ok=True)
        self.ensure_credentials()
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
            self._check_ours()
        except (BrokerStartTimeoutError, ForeignBrokerError):
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
        Then the platform principal is granted ``PLATFORM_ACLS`` on the topics and groups
        that start with ``resource_prefix`` (idempotent; the admin principal does all this).
        """
        wanted = self.settings.topic_partitions()
        compacted = self.settings.compacted_topics()
        unreachable = (
            f"no Kafka broker of this stack answers at {self.settings.bootstrap_servers} "
            "(start it with `ethgw kafka up`)"
        )
        try:
            options = client_options(self.settings, admin=True)
        except KafkaCredentialsError as exc:  # never started: no credentials yet
            raise BrokerUnreachableError(f"{unreachable}: {exc}") from None
        admin = AIOKafkaAdminClient(
            **options, client_id="ethgw-kafka-admin", request_timeout_ms=int(timeout_s * 1000)
        )
        try:
            await admin.start()
        except KafkaError as exc:
            await admin.close()
            try:
                await check_credentials(self.settings, admin=True)
            except KafkaCredentialsError as refused:
                raise ForeignBrokerError(str(refused)) from None
            raise BrokerUnreachableError(f"{unreachable}: {exc}") from None
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
            await _grant_platform_acls(admin, self.settings)
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
                # Re-raised as the Kafka subclass: callers catch either base. A broker there
                # is never adopted: its topics are another stack's.
                raise PortInUseError(
                    f"{exc} (another stack's Kafka broker? this stack uses only its own)"
                ) from None

    def _check_ours(self) -> None:
        """Raise ForeignBrokerError unless the broker takes this stack's admin credentials."""
        # start() is synchronous and may be called inside an event loop (tests): the
        # check runs in a loop of its own thread.
        with ThreadPoolExecutor(max_workers=1) as thread:
            checked = thread.submit(asyncio.run, check_credentials(self.settings, admin=True))
        try:
            checked.result()
        except KafkaCredentialsError as exc:
            raise ForeignBrokerError(
                f"not using the Kafka broker on port {self.settings.port}: {exc}"
            ) from None

    def ensure_credentials(self) -> None:
        """The admin and platform passwords: random, 0600, made once per state folder."""
        ensure_random_secret(self.settings.admin_password_path)
        ensure_random_secret(self.settings.platform_password_path)

    def _write_config(self) -> None:
        s = self.settings
        props = server_properties(s, listen_host=s.host, log_dirs=self.data_dir)
        write_private(self.config_file, properties_text(props, "devstack/kafka_broker.py"))

    def _format_storage_once(self, java: str) -> None:
        if (self.data_dir / "meta.properties").is_file():
            if not self.sasl_stamp.is_file():
                raise UnsecuredStorageError(
                    f"the Kafka storage in {self.data_dir} was formatted before the broker had"
                    " authentication and holds no SCRAM users: remove that folder (its"
                    " messages are lost) and start again"
                )
            return
        # Keep the cluster id so a wiped data folder is re-formatted into the same cluster.
        if self.cluster_id_file.is_file():
            cluster_id = self.cluster_id_file.read_text().strip()
        else:
            cluster_id = self._storage_tool(java, "random-uuid").strip()
            self.cluster_id_file.write_text(f"{cluster_id}\n")
        self._storage_tool(java, *format_arguments(self.settings, cluster_id, self.config_file))
        principals = f"{self.settings.admin_username} {self.settings.username}"
        self.sasl_stamp.write_text(f"{SASL_MECHANISM} {principals}\n")
        log.info("kafka storage formatted cluster_id=%s data_dir=%s", cluster_id, self.data_dir)

    def _storage_tool(self, java: str, *args: str) -> str:
        # The arguments (passwords among them) go in a 0600 file, never on the command line.
        argfile = self.state_dir / f".storage-tool.{os.getpid()}.args"
        write_private(argfile, argument_file_text(STORAGE_TOOL, list(args)))
        cmd = [java, *self._jvm_logging_flags(), "-cp", self._classpath(), f"@{argfile}"]
        try:
            result = subprocess.run(cmd, capture_output=True, text=True, timeout=60, check=False)
        finally:
            argfile.unlink(missing_ok=True)
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


def server_properties(
    settings: KafkaSettings, *, listen_host: str, log_dirs: Path
) -> dict[str, str | int]:
    """The broker's configuration: one KRaft node, SASL and ACLs, sized for a shared box.
    It listens on `listen_host` and is reached at the settings' host (compose: every
    address of its container, and its service name)."""
    s = settings
    return {
        "process.roles": "broker,controller",
        "node.id": NODE_ID,
        # Static voters (not KIP-853 bootstrap servers): one node that never changes.
        "controller.quorum.voters": f"{NODE_ID}@{s.host}:{s.controller_port}",
        "listeners": (
            f"CLIENT://{listen_host}:{s.port},CONTROLLER://{listen_host}:{s.controller_port}"
        ),
        "advertised.listeners": f"CLIENT://{s.host}:{s.port}",
        "controller.listener.names": "CONTROLLER",
        "inter.broker.listener.name": "CLIENT",
        **sasl_properties(s.admin_username, s.admin_password_path.read_text().strip()),
        "log.dirs": str(log_dirs),
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


def properties_text(props: Mapping[str, str | int], writer: str) -> str:
    text = f"# Written by {writer}; edit the settings instead.\n"
    return text + "".join(f"{key}={value}\n" for key, value in props.items())


def format_arguments(settings: KafkaSettings, cluster_id: str, config_file: Path) -> list[str]:
    """kafka-storage format's arguments: the storage with both principals' SCRAM credentials."""
    s = settings
    scram = [
        (s.admin_username, s.admin_password_path.read_text().strip()),
        (s.username, s.platform_password_path.read_text().strip()),
    ]
    return [
        "format",
        "--ignore-formatted",
        "-t",
        cluster_id,
        "-c",
        str(config_file),
        *(arg for user, password in scram for arg in _add_scram(user, password)),
    ]


def argument_file_text(main_class: str, arguments: list[str]) -> str:
    """A java launcher argument file (where # would start a comment): the main class and its
    arguments, kept off the command line that every user of the host can read."""
    return "".join(f"{_quoted(arg)}\n" for arg in (main_class, *arguments))


def sasl_properties(admin: str, password: str) -> dict[str, str]:
    """The broker's authentication and authorization: SCRAM-SHA-512 on the client listener
    (SASL_PLAINTEXT: loopback only), PLAIN on the controller listener (KRaft's controller
    cannot use SCRAM, whose credentials live in the metadata it serves), the admin principal
    the only super user, and nothing allowed without an ACL."""
    scram = "org.apache.kafka.common.security.scram.ScramLoginModule"
    plain = "org.apache.kafka.common.security.plain.PlainLoginModule"
    return {
        "listener.security.protocol.map": "CONTROLLER:SASL_PLAINTEXT,CLIENT:SASL_PLAINTEXT",
        "sasl.enabled.mechanisms": SASL_MECHANISM,
        "listener.name.client.sasl.enabled.mechanisms": SASL_MECHANISM,
        "listener.name.controller.sasl.enabled.mechanisms": "PLAIN",
        "sasl.mechanism.inter.broker.protocol": SASL_MECHANISM,
        "sasl.mechanism.controller.protocol": "PLAIN",
        f"listener.name.client.{SASL_MECHANISM.lower()}.sasl.jaas.config": (
            f'{scram} required username="{admin}" password="{password}";'
        ),
        "listener.name.controller.plain.sasl.jaas.config": (
            f'{plain} required username="{admin}" password="{password}" user_{admin}="{password}";'
        ),
        "authorizer.class.name": "org.apache.kafka.metadata.authorizer.StandardAuthorizer",
        "allow.everyone.if.no.acl.found": "false",
        "super.users": f"User:{admin}",
    }


def _quoted(argument: str) -> str:
    """One argument of a java launcher argument file (where # would start a comment)."""
    escaped = argument.replace("\\", "\\\\").replace('"', '\\"')
    return f'"{escaped}"'


def _add_scram(user: str, password: str) -> list[str]:
    return ["--add-scram", f"{SASL_MECHANISM}=[name={user},password={password}]"]


async def _grant_platform_acls(admin: AIOKafkaAdminClient, settings: KafkaSettings) -> None:
    """Allow the platform principal PLATFORM_ACLS (adding a binding that exists is a no-op)."""
    principal = f"User:{settings.username}"
    for resource, operations in PLATFORM_ACLS:
        for operation in operations:
            request = CreateAclsRequest(
                resource, settings.resource_prefix, _PREFIXED, principal, "*", operation, _ALLOW
            )
            # aiokafka's admin client has no create_acls; its request type is public.
            response = await admin._send_request(request)
            for code, message in response.creation_responses:
                if code != 0:
                    raise TopicCreationError(
                        f"granting {principal} ACL operation {operation} failed:"
                        f" {message or for_code(code).__name__}"
                    )
    log.info("kafka acls granted principal=%s prefix=%s", principal, settings.resource_prefix)


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
