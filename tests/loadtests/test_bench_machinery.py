"""The benchmark's machinery, cheaply: the mix, the locustfile, the monolith, the report.
(The benchmark itself is `ethgw bench`, never part of `make test`.)"""

from __future__ import annotations

import functools
import json
import os
import subprocess
import sys
import time
from collections.abc import AsyncIterator
from pathlib import Path
from typing import Any

import httpx
import pytest
import pytest_asyncio

from ethgw_wire.http_api import ENDPOINTS
from ethgw_wire.messages import Timings
from geth_cluster.cluster import GethCluster
from loadtests.bench import QUICK, checkout_text, machine_text, plan_cells
from loadtests.envelope import outcome
from loadtests.interference import CgroupCpuCap
from loadtests.micro import hop_seconds
from loadtests.mix import MIX, weights
from loadtests.pool import read_pool
from loadtests.report import (
    Cell,
    cell_result,
    markdown_table,
    plot_matrix,
    write_cells_csv,
    write_summary,
    zone_shares,
)
from loadtests.sampler import ResourceSample, ZoneSample
from service_kit.paths import REPO_ROOT
from tests.pipeline_fixtures import ServerProcess

# Table 5.1 of the thesis, in percent (architecture.md lists the same mix).
TABLE_5_1 = {
    "eth_balance": 20,
    "coinbase": 5,
    "node_accounts": 5,
    "block_number": 10,
    "create_account": 5,
    "list_accounts": 5,
    "unlock": 5,
    "send_transaction": 30,
    "transaction_receipt": 5,
    "transaction_by_hash": 5,
    "deploy_contract": 5,
}


def test_mix_is_table_5_1() -> None:
    """The mix has the thesis's eleven requests with its weights, summing to 100%."""
    assert weights() == TABLE_5_1
    assert sum(weights().values()) == 100


def test_mix_uses_routes_of_the_api() -> None:
    """Every request of the mix is a route the gateway and the monolith serve."""
    routes = {(e.method, e.path) for e in ENDPOINTS}
    assert [(m.method, m.path) for m in MIX if (m.method, m.path) not in routes] == []


def test_locustfile_loads_with_the_table_weights() -> None:
    """The locustfile imports under Locust's gevent and weights its tasks as the table."""
    code = "import json, loadtests.locustfile as f; print(json.dumps(f.task_weights()))"
    done = subprocess.run(
        [sys.executable, "-c", code], cwd=REPO_ROOT, capture_output=True, text=True, timeout=120
    )
    assert done.returncode == 0, done.stderr
    assert json.loads(done.stdout.splitlines()[-1]) == TABLE_5_1


def test_a_200_envelope_is_a_success_with_its_data() -> None:
    """HTTP 200 with envelope status 200: the data, no failure."""
    assert outcome(200, {"status": 200, "data": {"block_number": 7}}) == ({"block_number": 7}, None)


def test_a_refusal_is_a_failure_named_by_status_and_code() -> None:
    """Anything else fails, named as the summary's failure reasons show it."""
    body = {"status": 503, "error": {"code": "service_unavailable"}}
    assert outcome(503, body) == (None, "HTTP 503 service_unavailable")


def test_a_deferred_answer_is_not_a_success_by_itself() -> None:
    """A 202 (the task goes on) is no result: the locustfile polls the task for one."""
    assert outcome(202, {"status": 202, "task_id": "t"}) == (None, "HTTP 202")


def test_quick_profile_covers_every_kind_of_group() -> None:
    """--quick runs the monolith, lbh, and lbh against round_robin with a slowed node."""
    groups = plan_cells(QUICK)
    assert {(system, scenario) for system, _, scenario, _ in groups} >= {
        ("monolith", "uniform"),
        ("lbh", "uniform"),
        ("lbh", "slow-node"),
        ("round_robin", "slow-node"),
    }


def _summary(latencies_ms: list[float], failed: int = 0) -> dict[str, object]:
    samples = [
        [100.0 + i * 0.1, "eth_balance", lat, i >= failed, "" if i >= failed else "HTTP 503"]
        for i, lat in enumerate(latencies_ms)
    ]
    return {"target": len(samples), "setup_requests": 3, "setup_failures": 0, "samples": samples}


def test_cell_figures_come_from_the_samples() -> None:
    """Time to finish, throughput, percentiles and failures are computed from the samples."""
    cell = Cell("lbh", 3, 10, 100)
    resources = [ResourceSample(0.0, "node-1", "node", 40.0, 80.0)]
    result = cell_result(cell, _summary([10.0] * 99 + [1000.0], failed=2), resources, restarts=1)
    assert result.finished
    assert result.requests_done == 100
    assert result.duration_s == pytest.approx(9.9 + 0.01, abs=0.01)
    assert result.p50_ms == 10.0
    assert result.failures == 2
    assert result.failure_reasons == {"eth_balance HTTP 503": 2}
    assert (result.restarts, result.node_cpu_max) == (1, 40.0)


def test_report_writes_csv_markdown_and_charts(tmp_path: Path) -> None:
    """A tiny run's results become cells.csv, a markdown table and PNG charts."""
    results = [
        cell_result(Cell(system, 3, users, 5), _summary([5.0 * users] * 5), [], 0)
        for system in ("monolith", "lbh")
        for users in (10, 20)
    ]
    write_cells_csv(tmp_path / "cells.csv", results)
    charts = plot_matrix(tmp_path, results)
    write_summary(tmp_path / "summary.md", results, "# run", [str(c) for c in charts])
    rows = (tmp_path / "cells.csv").read_text().splitlines()
    assert rows[0].startswith("system,nodes,users,requests,scenario,finished")
    assert len(rows) == 1 + 4
    assert "| uniform | lbh | 3 | 20 | 5 |" in markdown_table(results)
    assert all(c.stat().st_size > 1000 for c in charts)
    assert "![matrix-duration_s](matrix-duration_s.png)" in (tmp_path / "summary.md").read_text()


def test_unfinished_cell_is_marked() -> None:
    """A cell that ran out of time shows how far it got."""
    result = cell_result(Cell("monolith", 1, 10, 50), _summary([5.0] * 20), [], 0)
    assert not result.finished
    assert "20 of 50 (unfinished)" in markdown_table([result])


# -- the monolith on the session chain -------------------------------------------------


@pytest_asyncio.fixture(scope="module", loop_scope="session")
async def monolith(
    geth_cluster: GethCluster, platform_file: Path, tmp_path_factory: pytest.TempPathFactory
) -> AsyncIterator[ServerProcess]:
    """The monolith in front of the session cluster's node-1."""
    env = {
        "ETHGW_MONOLITH_RPC_URL": geth_cluster.spec("node-1").rpc_url,
        "ETHGW_MONOLITH_ACCOUNTS_DIR": str(geth_cluster.settings.state_dir / "accounts"),
        "ETHGW_MONOLITH_PLATFORM_FILE": str(platform_file),
    }
    logs = tmp_path_factory.mktemp("monolith")
    process = ServerProcess("loadtests.monolith", env, logs, "monolith", "ETHGW_MONOLITH_HTTP_PORT")
    process.start()
    try:
        await process.wait_ready(path="/healthz")
        yield process
    finally:
        process.stop()


@pytest.mark.slow
async def test_monolith_answers_a_read(monolith: ServerProcess) -> None:
    """A read comes back from the node in the services' envelope."""
    async with httpx.AsyncClient(base_url=monolith.url, timeout=30) as client:
        response = await client.get("/api/v1/conn/blockNum")
    assert response.status_code == 200, response.text
    assert response.json()["data"]["block_number"] > 0


@pytest.mark.slow
async def test_monolith_creates_an_account_and_sends_from_it(monolith: ServerProcess) -> None:
    """A write path works end to end: create, unlock, send ether and wait for the receipt."""
    async with httpx.AsyncClient(base_url=monolith.url + "/api/v1", timeout=90) as client:
        created = await client.post("/admin/new", json={"password": "monolith-pass"})
        assert created.status_code == 200, created.text
        address = created.json()["data"]["address"]
        unlocked = await client.post(
            "/admin/unlock", json={"address": address, "password": "monolith-pass"}
        )
        assert unlocked.status_code == 200, unlocked.text
        sent = await client.post(
            "/tx/send", json={"from": address, "to": address, "value": 1, "waitReceipt": True}
        )
    assert sent.status_code == 200, sent.text
    assert sent.json()["data"]["status"] == "mined"


@pytest.mark.slow
async def test_monolith_refuses_bad_input_with_the_envelope(monolith: ServerProcess) -> None:
    """A wrong address is a 422 naming the field, as from the services."""
    async with httpx.AsyncClient(base_url=monolith.url, timeout=30) as client:
        response = await client.get("/api/v1/eth/balance", params={"address": "0x12"})
    assert response.status_code == 422
    assert response.json()["error"]["field"] == "address"


def _locust_cell(
    url: str, users: int, pool: Path, out: Path, requests: int = 20, think_s: float = 0.0
) -> dict[str, Any]:
    """One small cell of the locustfile against `url` with the account pool, its users paced
    at `think_s` (0: closed loop); its summary."""
    summary = out / f"u{users}.json"
    args = [
        str(Path(sys.executable).with_name("locust")),
        "-f", str(REPO_ROOT / "loadtests" / "locustfile.py"),
        "--headless", "--only-summary", "--loglevel", "WARNING",
        "-u", str(users), "-r", str(users), "--host", url,
        "--request-count", str(requests), "--summary-file", str(summary),
        "--account-pool", str(pool), "--run-time", "240s", "--stop-timeout", "5",
        "--think-s", str(think_s),
    ]  # fmt: skip
    env = {**os.environ, "PYTHONPATH": str(REPO_ROOT)}
    done = subprocess.run(args, cwd=REPO_ROOT, env=env, capture_output=True, text=True, timeout=300)
    assert summary.exists(), done.stdout[-2000:] + done.stderr[-2000:]
    result: dict[str, Any] = json.loads(summary.read_text())
    return result


@pytest.mark.slow
def test_a_later_cell_reuses_the_pool_and_creates_only_the_difference(
    monolith: ServerProcess, tmp_path: Path
) -> None:
    """3 users then 5 on one pool: the 5-user cell makes 2 accounts, the 3 reused ones can send."""
    pool = tmp_path / "pool.jsonl"
    first = _locust_cell(monolith.url, 3, pool, tmp_path)
    second = _locust_cell(monolith.url, 5, pool, tmp_path)
    assert (first["accounts_created"], first["accounts_reused"]) == (3, 0)
    assert (second["accounts_created"], second["accounts_reused"]) == (2, 3)
    assert second["setup_requests"] == 2 * 3  # create, unlock, transfer of the new two only
    assert [s for s in second["samples"] if "account_locked" in s[4]] == []
    assert len(read_pool(pool)) == 5


@pytest.mark.slow
def test_paced_users_start_their_tasks_a_think_time_apart(
    monolith: ServerProcess, tmp_path: Path
) -> None:
    """2 users paced at 1 s: 6 counted requests need one user to start 3 tasks, so their
    starts span at least 2 s, however fast the answers."""
    think_s, users, requests = 1.0, 2, 6
    pool = tmp_path / "pool.jsonl"
    summary = _locust_cell(monolith.url, users, pool, tmp_path, requests, think_s)
    samples = sorted(summary["samples"], key=lambda s: s[0])[:requests]
    assert len(samples) == requests
    starts = [ended - latency_ms / 1000 for ended, _, latency_ms, *_ in samples]
    least_span = (requests // users - 1) * think_s  # one user's 4 starts, a period apart
    assert max(starts) - min(starts) >= least_span - 0.2  # a sample's start is end - latency


@pytest.mark.slow
def test_a_cell_reports_the_requests_still_under_way_at_its_end(
    monolith: ServerProcess, tmp_path: Path
) -> None:
    """3 users in a closed loop: when the 20th request ends, the other users' requests (one
    each at most) are under way, and the 20th itself is not counted among them."""
    summary = _locust_cell(monolith.url, 3, tmp_path / "pool.jsonl", tmp_path)
    assert len(summary["left_ages_s"]) in (1, 2)
    assert min(summary["left_ages_s"]) >= 0.0


def test_zone_shares_say_where_a_node_was() -> None:
    """The slowed node's zones over a cell read as shares of the manager's samples."""
    samples = [
        ZoneSample(float(i), "node-1", zone, 0.5, 0.5, "up", 0.1)
        for i, zone in enumerate(["I", "II", "II", "III"])
    ] + [ZoneSample(0.0, "node-2", "I", 0.1, 0.1, "up", 0.1)]
    assert zone_shares(samples, "node-1") == "I 25%, II 50%, III 25%"
    assert zone_shares(samples, "node-9") == "no manager samples"


def test_cpu_cap_limits_a_busy_process() -> None:
    """A process under the slowed node's cgroup cap gets about its quota of a core."""
    import psutil

    busy = subprocess.Popen([sys.executable, "-c", "while True: pass"])
    try:
        try:
            # 2% of a core: below what even a loaded machine gives a busy loop, so it is
            # throttled for sure.
            cap = CgroupCpuCap(0.02, f"ethgw-test-cap-{busy.pid}")
        except OSError as exc:
            pytest.skip(f"no writable cgroup here ({exc}): the benchmark uses a noisy neighbour")
        try:
            cap.apply(busy.pid)
            process = psutil.Process(busy.pid)
            process.cpu_percent(None)
            time.sleep(2.0)
            used = process.cpu_percent(None)
            assert cap.throttled_periods() > 0
            assert used < 15.0
        finally:
            cap.close()
    finally:
        busy.kill()
        busy.wait(10)


def test_a_reads_hops_come_from_both_clocks() -> None:
    """The hops split the submitter's time around the provider's start and end."""
    timings = Timings(queued_s=0.003, executed_s=0.002)
    hops = hop_seconds(100.0, 100.002, timings, 100.008)
    assert hops == pytest.approx((0.002, 0.001, 0.002, 0.003, 0.008))


def test_the_machine_line_names_the_commit_measured() -> None:
    """Every bench's machine line starts with the checkout's commit, so a figure names it."""
    commit = subprocess.run(
        ["git", "-C", str(REPO_ROOT), "rev-parse", "--short", "HEAD"],
        capture_output=True,
        text=True,
        check=True,
    ).stdout.strip()
    assert machine_text().startswith(f"commit {commit}")


def test_a_checkout_with_changes_says_so(tmp_path: Path) -> None:
    """A checkout whose tracked files differ from its commit is named as such."""
    run = functools.partial(subprocess.run, check=True, capture_output=True, cwd=tmp_path)
    run(["git", "init", "-q"])
    (tmp_path / "f").write_text("a")
    run(["git", "add", "f"])
    run(["git", "-c", "user.email=t@t", "-c", "user.name=t", "commit", "-qm", "c"])
    assert not checkout_text(tmp_path).endswith("with uncommitted changes")
    (tmp_path / "f").write_text("b")
    assert checkout_text(tmp_path).endswith("with uncommitted changes")
