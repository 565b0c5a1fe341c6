"""The gateway's per-second traffic meter and the histogram quantile the dashboard shows."""

from __future__ import annotations

import pytest

from gateway.traffic import TrafficMeter, is_traffic, quantile

BOUNDS = (0.01, 0.1, 1.0)


def test_quantile_interpolates_inside_a_bucket() -> None:
    """Ten observations in (0.01, 0.1]: the median is halfway through that bucket."""
    assert quantile(0.5, [0, 10, 0, 0], BOUNDS) == pytest.approx(0.055)


def test_quantile_of_the_first_bucket_starts_at_zero() -> None:
    """Observations at or below the first bound interpolate from 0."""
    assert quantile(0.5, [4, 0, 0, 0], BOUNDS) == pytest.approx(0.005)


def test_quantile_above_every_bound_is_the_largest_bound() -> None:
    """An observation past the last bound says only that it is above it."""
    assert quantile(0.95, [0, 0, 0, 3], BOUNDS) == 1.0


def test_quantile_of_nothing_is_none() -> None:
    """No observation, no percentile."""
    assert quantile(0.5, [0, 0, 0, 0], BOUNDS) is None


def test_rate_counts_only_finished_seconds_of_the_window() -> None:
    """20 requests in the last 10 finished seconds are 2/s; the current second is not counted."""
    meter = TrafficMeter(bounds=BOUNDS)
    for second in range(100, 110):
        meter.observe(0.02, 200, second + 0.5)
        meter.observe(0.02, 200, second + 0.6)
    meter.observe(0.02, 200, 110.1)  # still filling
    summary = meter.summary(110.5, window_s=10)
    assert summary.requests_per_s == pytest.approx(2.0)


def test_old_seconds_leave_the_window() -> None:
    """Requests older than the window do not count in the rate."""
    meter = TrafficMeter(bounds=BOUNDS)
    meter.observe(0.02, 200, 50.0)
    assert meter.summary(100.0, window_s=10).requests_per_s == 0.0


def test_errors_are_the_5xx_answers() -> None:
    """A 503 counts as an error, a 404 does not."""
    meter = TrafficMeter(bounds=BOUNDS)
    meter.observe(0.02, 503, 10.0)
    meter.observe(0.02, 404, 10.0)
    assert meter.summary(11.0, window_s=1).errors_per_s == 1.0


def test_percentiles_come_from_the_window() -> None:
    """Nine fast requests and one slow: p50 is in the fast bucket, p95 in the slow one."""
    meter = TrafficMeter(bounds=BOUNDS)
    for _ in range(9):
        meter.observe(0.005, 200, 10.0)
    meter.observe(0.5, 200, 10.0)
    summary = meter.summary(11.0, window_s=1)
    assert summary.latency_p50_s is not None
    assert summary.latency_p50_s <= 0.01
    assert summary.latency_p95_s is not None
    assert 0.1 < summary.latency_p95_s <= 1.0


def test_history_fills_quiet_seconds_with_zero() -> None:
    """The per-second history has a point for every second, 0 where nobody called."""
    meter = TrafficMeter(bounds=BOUNDS)
    meter.observe(0.01, 200, 10.2)
    meter.observe(0.01, 200, 13.7)
    assert meter.summary(14.0).history == [(10, 1), (11, 0), (12, 0), (13, 1)]


def test_history_keeps_only_the_last_seconds() -> None:
    """The meter forgets seconds beyond `keep_s`."""
    meter = TrafficMeter(keep_s=3, bounds=BOUNDS)
    for second in range(10):
        meter.observe(0.01, 200, float(second))
    assert [at for at, _ in meter.summary(10.0).history] == [7, 8, 9]


@pytest.mark.parametrize(
    ("route", "counted"),
    [
        ("/api/v1/token/balance", True),
        ("/rpc", True),
        ("/admin/dashboard", False),
        ("/metrics", False),
    ],
)
def test_traffic_is_the_api_and_rpc_routes(route: str, counted: bool) -> None:
    """The app's calls count as traffic; the operators' and the scrapers' do not."""
    assert is_traffic(route) is counted
