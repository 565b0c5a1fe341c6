"""Settings of the cluster manager service, and the calibration it measures nodes against."""

from __future__ import annotations

import logging
from pathlib import Path

from pydantic import Field, model_validator
from pydantic_settings import BaseSettings, SettingsConfigDict

from balancer import Calibration
from balancer.recycle import DEFAULT_COOLDOWN_S, DEFAULT_RESTART_AFTER
from ethgw_wire.settings import DEFAULT_DIS_AVEMAX, DEFAULT_DIS_AVEMIN, Port, lbh_setting
from geth_cluster.crash_policy import CrashPolicy
from geth_cluster.errors import ClusterError

log = logging.getLogger("ethgw.manager")


class CalibrationFileError(ClusterError):
    """The configured calibration file exists but is not a valid calibration."""


class ManagerSettings(BaseSettings):
    """The cluster manager: sampling rhythm, smoothing, the DOWN rule, publishing, zone bounds."""

    model_config = SettingsConfigDict(env_prefix="ETHGW_MANAGER_", extra="ignore")

    sample_interval_s: float = Field(default=1.0, gt=0.0)
    alpha: float = Field(default=0.5, gt=0.0, le=1.0)  # EWMA weight of the newest sample
    # Blocks behind the highest head before a node is DOWN. None: ClusterSettings.max_lag
    # (default 3), the figure the cluster's own readiness check uses, so a node the cluster
    # calls ready after a restart is never one the manager still calls DOWN.
    max_lag: int | None = Field(default=None, ge=0)
    # Each node's head is read with this bound; a node slower than this is DOWN for the tick.
    rpc_timeout_s: float = Field(default=0.5, gt=0.0)
    publish: bool = True  # False: operator view only, nothing sent to Kafka
    # How long an operator's cordon/uncordon waits for Kafka to acknowledge the new state.
    publish_timeout_s: float = Field(default=5.0, gt=0.0)
    # The calibration record (`ethgw calibrate`, or `ethgw up`'s reuse-or-measure step, which
    # gives the manager and the providers the same file); without one, the two bounds below.
    calibration_file: Path | None = lbh_setting("calibration_file", None)
    dis_avemin: float = lbh_setting("dis_avemin", DEFAULT_DIS_AVEMIN)
    dis_avemax: float = lbh_setting("dis_avemax", DEFAULT_DIS_AVEMAX)
    # Recycling of zone III nodes (lbh-spec.md section 7).
    recycle: bool = True  # False: no automatic restarts (the operator's endpoint still works)
    restart_after: int = Field(default=DEFAULT_RESTART_AFTER, ge=1)  # consecutive zone III ticks
    cooldown_s: float = Field(default=DEFAULT_COOLDOWN_S, ge=0.0)  # after a node's restart ends
    # DRAINING before the restart, so the providers finish what they sent the node: a fixed
    # drain_s when no provider URL is set; with them, until the node has nothing in flight
    # (`ethgw_provider_inflight` summed over the providers' /metrics), at least
    # drain_settle_s (for the DRAINING state to reach them) and at most drain_max_s.
    drain_s: float = Field(default=2.0, ge=0.0)
    # The providers' base URLs (JSON list in ETHGW_MANAGER_PROVIDER_URLS); `ethgw up` sets it.
    provider_urls: tuple[str, ...] = ()
    drain_settle_s: float = Field(default=0.5, ge=0.0)
    drain_max_s: float = Field(default=10.0, ge=0.0)
    # After the restart, how long the node may take to follow the head before the restart is
    # called failed (the state is cleared either way; the node is DOWN while it lags).
    resync_timeout_s: float = Field(default=60.0, gt=0.0)
    # Self-healing: a node whose process died or whose container exited is started again
    # after a backoff (heal_backoff_s, doubling per death within heal_window_s, capped at
    # heal_backoff_max_s); the death past heal_max_restarts in the window is a crash loop:
    # the node is cordoned and left stopped until the operator uncordons it.
    heal: bool = True
    heal_backoff_s: float = Field(default=1.0, ge=0.0)
    heal_backoff_max_s: float = Field(default=60.0, ge=0.0)
    heal_max_restarts: int = Field(default=3, ge=0)
    heal_window_s: float = Field(default=600.0, gt=0.0)
    # The chain feed (geth_cluster/chain_feed.py): each new block on the chain-heads topic,
    # read from one readable node, another taking over from the next block when it fails.
    chain_feed: bool = True  # only when `publish` is on too
    chain_feed_poll_s: float = Field(default=0.25, gt=0.0)
    chain_feed_rpc_timeout_s: float = Field(default=2.0, gt=0.0)
    chain_feed_rest_s: float = Field(default=5.0, ge=0.0)  # a failed source is skipped this long
    chain_feed_max_backfill: int = Field(default=1024, ge=1)  # blocks caught up after an outage
    events_kept: int = Field(default=200, ge=1)  # recent events GET /events lists
    # LBH of the last ticks GET /lbh lists (the dashboard's chart): 10 minutes at 1 s.
    lbh_history_ticks: int = Field(default=600, ge=1)
    api_host: str = "127.0.0.1"
    api_port: Port = 8700

    @model_validator(mode="after")
    def _check(self) -> ManagerSettings:
        # Refused at start-up, not at the first zoning (lbh-spec.md section 2).
        Calibration(self.dis_avemin, self.dis_avemax)
        self.crash_policy()  # refuses a backoff whose cap is below its start
        if self.rpc_timeout_s > self.sample_interval_s:
            raise ValueError(
                f"rpc_timeout_s ({self.rpc_timeout_s}) must not exceed sample_interval_s "
                f"({self.sample_interval_s}): a tick has to fit in its interval"
            )
        return self

    def crash_policy(self) -> CrashPolicy:
        """The self-healing rule these settings describe."""
        return CrashPolicy(
            self.heal_backoff_s, self.heal_backoff_max_s, self.heal_max_restarts, self.heal_window_s
        )


def load_calibration(settings: ManagerSettings) -> Calibration:
    """The calibration file's bounds when there is one, else the configured defaults."""
    path = settings.calibration_file
    if path is not None:
        try:
            text = path.read_text()
        except FileNotFoundError:
            # Normal before the first `ethgw calibrate`: say so once, then use the defaults.
            log.warning("calibration file missing path=%s using=defaults", path)
        else:
            try:
                calibration = Calibration.from_json(text)
            except ValueError as error:
                raise CalibrationFileError(f"{path}: {error}") from None
            log.info(
                "calibration loaded path=%s dis_avemin=%.4f dis_avemax=%.4f",
                path,
                calibration.dis_avemin,
                calibration.dis_avemax,
            )
            return calibration
    return Calibration(settings.dis_avemin, settings.dis_avemax)
