"""Settings blocks shared by several components (pydantic-settings, env prefix ETHGW_)."""

from __future__ import annotations

import os
from pathlib import Path
from typing import Annotated, Any, Literal

from pydantic import AliasChoices, Field, model_validator
from pydantic_settings import BaseSettings, SettingsConfigDict

from service_kit.logs import LogSettings as LogSettings  # ETHGW_LOG_*: declared in service_kit
from service_kit.paths import default_state_dir

# What a record batch adds to one record's value: the batch and record headers and the key
# (a task id), with room to spare.
RECORD_OVERHEAD_BYTES = 1024

# A TCP port a component listens on, or the first of a block of them.
Port = Annotated[int, Field(ge=1, le=65535)]


class KafkaSettings(BaseSettings):
    """The broker and the topic names every service agrees on."""

    model_config = SettingsConfigDict(env_prefix="ETHGW_KAFKA_", extra="ignore")

    host: str = "127.0.0.1"
    port: Port = 9092
    controller_port: Port = 9093
    heap_mb: int = 512
    state_dir: Path = Field(default_factory=lambda: default_state_dir() / "kafka")

    topic_read: str = "ethgw.tasks.read"
    topic_write: str = "ethgw.tasks.write"
    topic_results: str = "ethgw.results"
    # A service instance's own reply topic is this prefix and its instance id.
    topic_replies_prefix: str = "ethgw.replies."
    topic_node_states: str = "ethgw.node-states"
    topic_events: str = "ethgw.events"
    # Each new block's header and logs, in order, keyed by number (ethgw_wire/chain_heads.py):
    # one partition, so every reader sees the blocks in the order they were published.
    topic_chain_heads: str = "ethgw.chain-heads"
    # Provider-side durable tables (compacted: the latest value per key is kept).
    topic_accounts: str = "ethgw.accounts"  # encrypted keystores by address
    topic_tx_journal: str = "ethgw.tx-journal"  # signed raw transactions by task id
    topic_unlock_grants: str = "ethgw.unlock-grants"  # sealed unlocked keys by address
    # SASL/SCRAM-SHA-512 on the client listener (docs/kafka.md, "Authentication"). Every
    # service is the platform principal; its password, made random per stack at the broker's
    # first start, is in password_file (0600). The admin principal (the broker's super user:
    # topics and ACLs) has its own file. None: <state_dir>/credentials/<principal>.password.
    username: str = "ethgw"
    password_file: Path | None = None
    admin_username: str = "ethgw-admin"
    admin_password_file: Path | None = None
    # Every topic and consumer group of the platform starts with it: the platform principal
    # may use what starts with it and nothing else (its ACLs are prefixed).
    resource_prefix: str = "ethgw"
    task_partitions: int = 6
    result_partitions: int = 6
    # The largest record the broker takes (its message.max.bytes) and a producer sends
    # (max_request_size): a larger one is refused for good, however often it is sent.
    max_message_bytes: int = Field(default=1_048_576, ge=64 * 1024)
    # The largest result record a provider publishes. A larger result becomes a failed
    # result_too_large one, so a client is told at once instead of a task that can never
    # be published. Kept below max_message_bytes by the record's own overhead.
    max_result_bytes: int = Field(default=512 * 1024, ge=16 * 1024)

    @model_validator(mode="after")
    def _result_fits_a_message(self) -> KafkaSettings:
        room = self.max_message_bytes - RECORD_OVERHEAD_BYTES
        if self.max_result_bytes > room:
            raise ValueError(
                f"max_result_bytes ({self.max_result_bytes}) must leave {RECORD_OVERHEAD_BYTES}"
                f" bytes below max_message_bytes ({self.max_message_bytes})"
            )
        return self

    @model_validator(mode="after")
    def _topics_carry_the_prefix(self) -> KafkaSettings:
        outside = sorted(
            name
            for name in [*self.topic_partitions(), self.topic_replies_prefix]
            if not name.startswith(self.resource_prefix)
        )
        if outside:
            raise ValueError(
                f"topics {outside} do not start with resource_prefix ({self.resource_prefix!r}):"
                " the platform principal's ACLs would not cover them"
            )
        return self

    @property
    def platform_password_path(self) -> Path:
        return self.password_file or self.state_dir / "credentials" / "platform.password"

    @property
    def admin_password_path(self) -> Path:
        return self.admin_password_file or self.state_dir / "credentials" / "admin.password"

    @property
    def bootstrap_servers(self) -> str:
        return f"{self.host}:{self.port}"

    def reply_topic(self, instance_id: str) -> str:
        return f"{self.topic_replies_prefix}{instance_id}"

    def topic_partitions(self) -> dict[str, int]:
        """Every topic the platform uses, with its partition count."""
        return {
            self.topic_read: self.task_partitions,
            self.topic_write: self.task_partitions,
            self.topic_results: self.result_partitions,
            self.topic_node_states: 1,
            self.topic_events: 1,
            self.topic_chain_heads: 1,
            self.topic_accounts: 1,
            self.topic_tx_journal: 3,
            self.topic_unlock_grants: 1,
        }

    def compacted_topics(self) -> set[str]:
        """Topics keyed by entity where only the latest value per key matters."""
        return {
            self.topic_node_states,
            self.topic_accounts,
            self.topic_tx_journal,
            self.topic_unlock_grants,
        }


class SealingSettings(BaseSettings):
    """Where the platform's sealing keys are (ethgw_wire/sealing.py): made once, 0700.
    Every producer of tasks reads the public key there; the providers the private ones."""

    model_config = SettingsConfigDict(env_prefix="ETHGW_SEALING_", extra="ignore")

    dir: Path = Field(default_factory=lambda: default_state_dir() / "sealing")


class KeystoreSettings(BaseSettings):
    """How every keystore the platform writes is encrypted: the chain's accounts (files)
    and the accounts made through the API (the accounts topic)."""

    model_config = SettingsConfigDict(env_prefix="ETHGW_KEYSTORE_", extra="ignore")

    # scrypt's cost N: geth's standard 2^18 (its "light" 2^12 is for tests). Tests and
    # benchmarks that make many accounts set a lower one; a keystore keeps its own N, so
    # it is decrypted at the cost it was written with.
    scrypt_n: int = Field(default=2**18, ge=2)
    # scrypt runs at once in one process (each holds a core and 128 * 8 * N bytes: 256 MiB
    # at 2^18); None: one per core.
    scrypt_slots: int | None = Field(default=None, ge=1)

    @model_validator(mode="after")
    def _n_is_a_power_of_two(self) -> KeystoreSettings:
        if self.scrypt_n & (self.scrypt_n - 1):
            raise ValueError(f"scrypt_n ({self.scrypt_n}) must be a power of two")
        return self

    def slots(self) -> int:
        return self.scrypt_slots or len(os.sched_getaffinity(0))


class ReadConsistencySettings(BaseSettings):
    """Read your writes and the providers' cache of answers that cannot change
    (docs/pipeline.md, "Read your writes, one head, and the read cache")."""

    model_config = SettingsConfigDict(env_prefix="ETHGW_READS_", extra="ignore")

    # Answers kept in a provider's cache of immutable answers (least recently used go first).
    cache_entries: int = Field(default=4096, ge=0)
    # Confirmations before a block, a transaction or a receipt found by number counts as
    # unable to change. Clique with one sealer does not reorganise; the depth covers a
    # node's own side chain while it catches up.
    safe_depth: int = Field(default=6, ge=1)
    # Transactions and block hashes a provider remembers seeing mined, with their block.
    seen_mined_entries: int = Field(default=100_000, ge=1)
    # How long a read naming a block no routable node has yet waits for one to reach it,
    # before it runs where the scheduler put it (and may answer not found).
    min_block_wait_s: float = Field(default=5.0, ge=0.0)
    # A client's lowest block further than this past the highest head the node reports give
    # is refused at the door (422): no node would reach it within the wait, and a read
    # waiting for it would hold a provider's execution slot for nothing.
    min_block_max_ahead: int = Field(default=8, ge=0)


class ClusterSettings(BaseSettings):
    """Shape of the local Geth private network: one sealer plus N service nodes."""

    model_config = SettingsConfigDict(env_prefix="ETHGW_CLUSTER_", extra="ignore")

    state_dir: Path = Field(default_factory=lambda: default_state_dir() / "cluster")
    nodes: int = Field(default=3, ge=1, le=16)
    chain_id: int = 4242
    block_period: int = Field(default=1, ge=1)
    gas_limit: int = 30_000_000
    p2p_port_base: Port = 30303
    rpc_port_base: Port = 8545
    authrpc_port_base: Port = 8651
    # What LBH measures a node against (lbh-spec.md section 1).
    node_memory_budget_mb: float = 1024.0
    node_cpu_cores: float = 1.0
    # Per-node exceptions to node_cpu_cores, e.g. {"node-1": 0.25} for a node under a
    # CPU cap (the benchmark's slowed node), so its CPU ratio is against its real share.
    node_cpu_cores_by_node: dict[str, float] = Field(default_factory=dict)
    geth_cache_mb: int = 128  # geth's --cache; its default of 1 GiB would dwarf the budget
    max_lag: int = Field(default=3, ge=0)  # blocks behind the head before a node is DOWN
    start_timeout_s: float = 90.0
    faucet_balance_eth: int = 1_000_000_000
    # How the nodes run: local processes, or containers of a local Docker engine, limited to
    # node_memory_budget_mb and node_cpu_cores (docs/cluster-manager.md, "Docker runtime"), or
    # "compose": existing containers adopted by label (geth_cluster/runtimes/compose.py).
    runtime: Literal["process", "docker", "compose"] = "process"
    # The process runtime: run each service node in a cgroup of its own limited to its
    # allotment (cpu_cores_of(node) cores, node_memory_budget_mb), as the docker runtime's
    # --cpus/--memory do (the benchmark's node-bound scenario). Off: the figures are only
    # what LBH measures the nodes against.
    process_node_cgroup: bool = False
    # The compose runtime adopts the containers labelled ethgw.node=<node> and this label.
    compose_selector: str = "ethgw.stack=compose"
    # A node's RPC address as the manager and the providers reach it: {name} and {port}
    # are the node's. compose.yaml sets "http://{name}:{port}" (one host per container).
    rpc_url_template: str = "http://127.0.0.1:{port}"

    def cpu_cores_of(self, node: str) -> float:
        """The CPU cores a node is allotted: its own figure, else node_cpu_cores."""
        return self.node_cpu_cores_by_node.get(node, self.node_cpu_cores)


def request_key_file(state_dir: Path) -> Path:
    """Where the request key of the platform running on `state_dir` is, unless told."""
    return state_dir / "auth" / "request.key"


class ServiceAuthSettings(BaseSettings):
    """How the platform's processes authenticate their calls to each other
    (ethgw_wire.request_auth)."""

    model_config = SettingsConfigDict(env_prefix="ETHGW_AUTH_", extra="ignore")

    # The shared HMAC key (0600, made on first use). Its folder holds only what every
    # service needs (this key and the registry token), so compose mounts it alone.
    key_file: Path = Field(default_factory=lambda: request_key_file(default_state_dir()))
    # A signed request older or newer than this is refused (clocks of one host or network).
    max_age_s: float = Field(default=30.0, gt=0)
    # The largest body a signed app reads to check its signature; the gateway's own limit
    # (ETHGW_GATEWAY_BODY_LIMIT_BYTES) is far below it.
    max_body_bytes: int = Field(default=4 * 1024 * 1024, ge=1024)


class PlatformSettings(BaseSettings):
    """The platform token's parameters, used when `ethgw up` deploys it."""

    model_config = SettingsConfigDict(env_prefix="ETHGW_PLATFORM_", extra="ignore")

    publish_reward: int = Field(default=100, ge=0)  # tokens a publisher earns per project
    default_price: int = Field(default=10, ge=0)  # a project's price when none is given
    admin_funding_eth: int = Field(default=10_000, ge=1)  # gas money for the admin
    file: Path = Field(default_factory=lambda: default_state_dir() / "platform.json")


# -- the LBH bounds: one setting read by the cluster manager and every provider -------

DEFAULT_DIS_AVEMIN = 0.1
"""Dis_avemin without a calibration file: an idle Geth service node on a fresh chain
(--cache 128) measured at 55-60 MB of the 1 GiB budget and under 1% CPU (d ~ 0.06);
0.1 leaves room for its cache to fill."""
DEFAULT_DIS_AVEMAX = 1.0  # balancer.DEFAULT_DIS_AVEMAX: a node at full CPU


def lbh_setting(name: str, default: object) -> Any:
    """A field every component reads from the same variable, ETHGW_LBH_<NAME>, so the
    manager's zones and the providers' plans can never use different bounds."""
    env = f"ETHGW_LBH_{name.upper()}"
    return Field(default=default, validation_alias=AliasChoices(name, env))


def default_calibration_file() -> Path:
    return default_state_dir() / "calibration.json"
