"""Provider settings (env prefix ETHGW_PROVIDER_)."""

from __future__ import annotations

import os
import socket
from pathlib import Path

from pydantic import Field
from pydantic_settings import BaseSettings, SettingsConfigDict

from balancer import (
    DEFAULT_COOLDOWN_S,
    DEFAULT_DELTA,
    DEFAULT_STRATEGY,
    STRATEGY_NAMES,
    TaskClass,
)
from ethgw_wire.operations import RPC_READ_METHODS
from ethgw_wire.settings import DEFAULT_DIS_AVEMAX, DEFAULT_DIS_AVEMIN, lbh_setting
from provider.accounts import AccountLimits
from service_kit.paths import default_state_dir


def _default_provider_id() -> str:
    return f"provider-{socket.gethostname()}-{os.getpid()}"


class ProviderSettings(BaseSettings):
    model_config = SettingsConfigDict(env_prefix="ETHGW_PROVIDER_", extra="ignore")

    provider_id: str = Field(default_factory=_default_provider_id)
    group_id: str = "ethgw-providers"
    # A dead provider's partitions move to the others after this (the broker's minimum).
    session_timeout_ms: int = 6000
    heartbeat_interval_ms: int = 1500
    http_host: str = "127.0.0.1"
    http_port: int = 8200

    # Scheduling (lbh-spec.md): the strategy, its calibration and the safety valve.
    strategy: str = DEFAULT_STRATEGY
    dis_avemin: float = lbh_setting("dis_avemin", DEFAULT_DIS_AVEMIN)
    dis_avemax: float = lbh_setting("dis_avemax", DEFAULT_DIS_AVEMAX)
    calibration_file: Path | None = lbh_setting("calibration_file", None)
    delta: float = DEFAULT_DELTA
    # Each task class's memory need in MB for the capacity rule (lbh-spec.md section 6), as a
    # JSON object ({"RT": 0.5, ...}); the calibration file's measured figures win over it. None
    # and no figures in the file: no class needs memory, so only a node over its budget is
    # refused.
    task_memory_mb: dict[TaskClass, float] | None = None
    max_pause_s: float = 5.0
    node_stale_s: float = 15.0  # a node report older than this counts as DOWN
    # The cluster manager's API: a strategy's request to recycle a node goes there (None: the
    # request is only counted and logged). One request per node per cool-down.
    manager_url: str | None = None
    recycle_cooldown_s: float = Field(default=DEFAULT_COOLDOWN_S, ge=0.0)

    # The round loop.
    max_outstanding: int = Field(default=512, ge=1)  # held + running tasks per provider
    concurrency: int = Field(default=64, ge=1)  # tasks doing node work at once (not receipt waits)
    poll_timeout_ms: int = 20
    idle_round_s: float = 0.05  # wait between rounds while tasks are held
    # Finished tasks' offsets are committed when a fetch comes back empty, or at most this
    # long after the last commit while tasks keep coming: not in every round, where the
    # commit's request went out ahead of the round's node calls (docs/benchmarks.md).
    commit_interval_s: float = Field(default=0.1, ge=0.0)

    # Execution.
    rpc_timeout_s: float = 10.0
    read_attempts: int = 3
    receipt_timeout_s: float = 60.0
    gas_price_wei: int | None = None  # None: ask the node (eth_gasPrice)
    gas_margin: float = 1.25  # estimate x margin
    funding_wei: int = 10**18  # gas money a new account gets from the faucet
    # What one user API key may do with accounts (admin keys have no quota): how many it
    # may make, how much ether the faucet sends them in all (funding_wei each, until this
    # is spent; later accounts get none), and how many failed unlocks of one account, or
    # by one key, are tried per window (per provider) before the next ones are refused.
    accounts_per_key: int = Field(default=20, ge=0)
    faucet_wei_per_key: int = Field(default=5 * 10**18, ge=0)
    unlock_failures_per_account: int = Field(default=5, ge=1)
    unlock_failures_per_key: int = Field(default=20, ge=1)
    unlock_failure_window_s: float = Field(default=60.0, gt=0.0)
    # Unlock grants past their expiry are tombstoned on their topic this often.
    grant_prune_interval_s: float = Field(default=60.0, gt=0.0)
    # A sent transaction not mined after this is sent again (a node may have lost it).
    rebroadcast_after_s: float = Field(default=6.0, gt=0.0)
    rebroadcast_interval_s: float = Field(default=2.0, gt=0.0)
    rebroadcast_max_watched: int = Field(default=50_000, ge=1)
    rebroadcast_max_age_s: float = Field(default=900.0, gt=0.0)
    # Sends of a transaction's bytes to the nodes it was not sent to (provider/spreading.py)
    # under way at once; past it, gossip carries the transaction. 0: none are sent.
    spread_max_in_flight: int = Field(default=64, ge=0)
    rpc_read_methods: tuple[str, ...] = RPC_READ_METHODS

    # Where the chain's own accounts and the platform record live.
    accounts_dir: Path = Field(default_factory=lambda: default_state_dir() / "cluster" / "accounts")
    platform_file: Path = Field(default_factory=lambda: default_state_dir() / "platform.json")

    def account_limits(self) -> AccountLimits:
        return AccountLimits(
            accounts_per_key=self.accounts_per_key,
            faucet_wei_per_key=self.faucet_wei_per_key,
            unlock_failures_per_account=self.unlock_failures_per_account,
            unlock_failures_per_key=self.unlock_failures_per_key,
            unlock_failure_window_s=self.unlock_failure_window_s,
        )

    def validate_strategy(self) -> None:
        if self.strategy not in STRATEGY_NAMES:
            raise ValueError(
                f"ETHGW_PROVIDER_STRATEGY={self.strategy!r} is not one of {sorted(STRATEGY_NAMES)}"
            )
