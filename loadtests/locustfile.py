"""The thesis's table 5.1 mix as a Locust scenario, through the gateway with an API key.

Run it headless as its own process (Locust patches the standard library with gevent,
so nothing of ours imports this module):

    locust -f loadtests/locustfile.py --headless -u 200 -r 50 \
        --host http://127.0.0.1:8000 --api-key "$KEY" --request-count 5000 \
        --summary-file results/cell.json

Each simulated user makes its own account (created, unlocked, one mined transaction
first), or, with `--account-pool FILE`, takes one an earlier cell of the same system
start made (loadtests/pool.py) and creates one only when the pool has none left; then
it draws requests from `loadtests.mix.MIX` by weight: balances of real
accounts, transactions between real accounts, lookups of the hashes those returned.
With `--request-count N` the run stops after N task requests (set-up requests are
named "setup ..." and not counted) and writes every sample to `--summary-file`.
With `--think-s T` each user starts a task every T s (loadtests/pacing.py) instead of
the next one as soon as an answer comes back.
"""

from __future__ import annotations

import json
import random
import secrets
import time
from collections import deque
from dataclasses import replace
from pathlib import Path
from typing import Any
from urllib.parse import urlencode

import gevent
from locust import FastHttpUser, events
from locust.env import Environment

from ethgw_wire.artifacts import load_artifact
from ethgw_wire.http_api import API_KEY_HEADER, API_PREFIX
from loadtests.envelope import outcome
from loadtests.in_flight import InFlight
from loadtests.mix import CALL_PREFIX, MIX, SETUP_PREFIX
from loadtests.pacing import Pacing
from loadtests.pool import AccountPool, PooledAccount

PASSWORD = "bench-user-password"
# Every unlock (the set-up's and the mix's) asks for the same duration, so a later one
# only extends an account's unlock: the set-up's expiry is a lower bound for the pool.
UNLOCK_S = 3600
# How long a pooled account's unlock must still hold to skip the unlock: the whole
# cell, which Locust's --run-time bounds (this when there is none).
DEFAULT_CELL_S = 900.0
RECEIPT_AGE_S = 4.0  # a hash this old has been mined (1 s blocks), so its receipt exists

SETUP_WAIT_S = 300.0  # the longest the set-up of all users may take before tasks start
DEFERRED_WAIT_S = 300.0  # the longest a deferred counted request is polled for
# A deferred task is polled after 1 s, then at doubling intervals up to 8 s: 1,200 users
# polling every second were ~300 requests a second of their own in one set-up.
POLL_FIRST_S = 1.0
POLL_MAX_S = 8.0


class _RequestFailedError(Exception):
    """What Locust records for a failed request: the status and the envelope's code."""


def _json_or_none(response: Any) -> Any:
    try:
        return response.json()
    except (ValueError, TypeError):
        return None


# Addresses of every simulated user of this process: the recipients of transfers.
KNOWN_ADDRESSES: list[str] = []
READY = [0]  # users done with their set-up
POOL: list[AccountPool] = []  # the --account-pool, if given
CELL_S = [DEFAULT_CELL_S]
THINK_S = [0.0]  # --think-s: each user's pacing period (0: closed loop)


class Recorder:
    """Every counted request of the run, and the stop once the fixed count is reached."""

    def __init__(self) -> None:
        self.target = 0
        self.samples: list[tuple[float, str, float, bool, str]] = []
        self.failures = 0
        self.setup_failures = 0
        self.setup_requests = 0
        self.deferred = 0  # counted requests answered 202 and polled to their result
        self.in_flight = InFlight()  # counted requests under way
        # The age of each counted request still under way when the N-th ended.
        self.left_ages_s: list[float] = []
        self.accounts_created = 0  # by the set-up (the mix's create_account is counted)
        self.accounts_reused = 0  # taken from the pool instead
        self.environment: Environment | None = None
        self._stopping = False

    def on_request(
        self, name: str, response_time: float, exception: BaseException | None, **_: Any
    ) -> None:
        if name.startswith(CALL_PREFIX):
            return
        if name.startswith(SETUP_PREFIX):
            self.setup_requests += 1
            self.setup_failures += exception is not None
            return
        ended = time.time()
        reason = "" if exception is None else str(exception)[:120]
        self.samples.append((ended, name, response_time, exception is None, reason))
        self.failures += exception is not None
        if self.target and len(self.samples) >= self.target and not self._stopping:
            self._stopping = True
            self.left_ages_s = self.in_flight.ages_at(ended)
            runner = self.environment.runner if self.environment else None
            if runner is not None:
                gevent.spawn(runner.quit)

    def summary(self) -> dict[str, Any]:
        return {
            "target": self.target,
            "setup_requests": self.setup_requests,
            "setup_failures": self.setup_failures,
            "deferred": self.deferred,
            "left_ages_s": [round(age, 3) for age in self.left_ages_s],
            "accounts_created": self.accounts_created,
            "accounts_reused": self.accounts_reused,
            "think_s": THINK_S[0],
            "samples": [list(s) for s in self.samples],
        }


RECORDER = Recorder()


@events.init_command_line_parser.add_listener
def _arguments(parser: Any) -> None:
    parser.add_argument("--api-key", default="", help="the gateway's API key (admin: deploys)")
    parser.add_argument("--request-count", type=int, default=0, help="stop after N requests")
    parser.add_argument("--summary-file", default="", help="write every sample here (JSON)")
    parser.add_argument("--progress-file", default="", help="counts, rewritten every second")
    parser.add_argument(
        "--account-pool", default="", help="earlier cells' accounts (JSON lines): reused, extended"
    )
    parser.add_argument(
        "--think-s", type=float, default=0.0, help="a task every THINK_S s a user (0: closed loop)"
    )


@events.init.add_listener
def _init(environment: Environment, **_: Any) -> None:
    RECORDER.environment = environment
    options = environment.parsed_options
    RECORDER.target = int(getattr(options, "request_count", 0) or 0)
    environment.events.request.add_listener(RECORDER.on_request)
    pool = getattr(options, "account_pool", "")
    if pool:
        POOL.append(AccountPool(Path(pool)))
    THINK_S[0] = float(getattr(options, "think_s", 0.0) or 0.0)
    run_time = getattr(options, "run_time", None)  # seconds: Locust parses the timespan
    if run_time:
        CELL_S[0] = float(run_time)
    progress = getattr(options, "progress_file", "")
    if progress:
        gevent.spawn(_report_progress, Path(progress))


def _report_progress(path: Path) -> None:
    """What the benchmark's progress line shows: requests done, failed, set-up done."""
    while True:
        done = {
            "done": len(RECORDER.samples),
            "failed": RECORDER.failures,
            "setup": RECORDER.setup_requests,
            "created": RECORDER.accounts_created,
            "reused": RECORDER.accounts_reused,
        }
        path.write_text(json.dumps(done))
        gevent.sleep(1.0)


@events.quitting.add_listener
def _write_summary(environment: Environment, **_: Any) -> None:
    path = getattr(environment.parsed_options, "summary_file", "")
    if path:
        Path(path).write_text(json.dumps(RECORDER.summary()))


def _token_deploy_body() -> dict[str, Any]:
    artifact = load_artifact("PlatformToken")
    # The platform's own contract, as the app deploys it: publish reward, default price.
    return {"abi": artifact.abi, "bytecode": artifact.bytecode, "args": [100, 10]}


class PlatformUser(FastHttpUser):
    """One user of the private-equity app, drawing requests from table 5.1."""

    abstract = True
    network_timeout = 60.0
    connection_timeout = 10.0
    deploy_body: dict[str, Any] | None = None

    def on_start(self) -> None:
        self.headers = {API_KEY_HEADER: self.environment.parsed_options.api_key}
        self.sent: deque[tuple[float, str]] = deque(maxlen=50)
        pooled = POOL[0].take() if POOL else None
        if pooled is None:
            self._set_up_new_account()
        else:
            self._reuse(pooled)
        KNOWN_ADDRESSES.append(self.address)
        self._wait_for_everyone()
        self._start_pacing()

    def _set_up_new_account(self) -> None:
        """Create, unlock, one transfer waited for until mined; then pooled for later cells."""
        self.address = self._create_account(SETUP_PREFIX + "create_account")
        RECORDER.accounts_created += 1
        unlocked_until = self._setup_unlock()
        first = self._setup_post(
            SETUP_PREFIX + "send_transaction",
            "/tx/send",
            {"from": self.address, "to": self.address, "value": 1, "waitReceipt": True},
        )
        if first is None:
            return
        self.sent.append((0.0, first["tx_hash"]))  # mined: old enough for any lookup
        if POOL and unlocked_until is not None:  # only a wholly set-up account is lent
            POOL[0].add(PooledAccount(self.address, first["tx_hash"], unlocked_until))

    def _reuse(self, pooled: PooledAccount) -> None:
        """An account of an earlier cell: funded, with a mined hash, and unlocked in this
        same provider (or monolith) process; unlocked again only if that may run out
        before this cell ends (the unlock lives in the process's memory for UNLOCK_S)."""
        RECORDER.accounts_reused += 1
        self.address = pooled.address
        self.sent.append((0.0, pooled.tx_hash))
        if pooled.unlocked_for(CELL_S[0], time.time()):
            return
        unlocked_until = self._setup_unlock()
        if unlocked_until is not None:
            POOL[0].add(replace(pooled, unlocked_until=unlocked_until))

    def _setup_unlock(self) -> float | None:
        """The set-up's unlock; a time it surely holds until (None if it failed)."""
        asked_at = time.time()  # the service starts the UNLOCK_S after this
        body = {"address": self.address, "password": PASSWORD, "durationS": UNLOCK_S}
        if self._setup_post(SETUP_PREFIX + "unlock", "/admin/unlock", body) is None:
            return None
        return asked_at + UNLOCK_S

    def _wait_for_everyone(self) -> None:
        """Counted requests start once every user is set up (or after SETUP_WAIT_S), so
        the fixed count runs at the full concurrency and not under the set-up's load."""
        READY[0] += 1
        runner = self.environment.runner
        deadline = time.monotonic() + SETUP_WAIT_S
        while runner is not None and READY[0] < runner.target_user_count:
            if time.monotonic() > deadline:
                return
            gevent.sleep(0.2)

    def _start_pacing(self) -> None:
        """The think time of --think-s: the first task after a random phase of the period,
        then one every period (none: closed loop, the next task as soon as one ends)."""
        self.pacing = Pacing(THINK_S[0])
        gevent.sleep(self.pacing.phase_s(random.random()))
        self.pacing.start(time.monotonic())

    def wait_time(self) -> float:
        """Locust's wait after each task: the rest of the user's pacing period."""
        return self.pacing.wait_s(time.monotonic())

    # -- plumbing --------------------------------------------------------------------

    def _check(self, response: Any) -> dict[str, Any] | None:
        """The envelope's data on a 200; anything else (a 202 included) is a failure."""
        data, failure = outcome(response.status_code, _json_or_none(response))
        if failure is None:
            response.success()
        else:
            response.failure(failure)
        return data

    def _get(self, name: str, path: str, **query: Any) -> dict[str, Any] | None:
        url = API_PREFIX + path + (f"?{urlencode(query)}" if query else "")
        return self._counted("GET", name, url)

    def _post(self, name: str, path: str, body: dict[str, Any]) -> dict[str, Any] | None:
        return self._counted("POST", name, API_PREFIX + path, json=body)

    def _counted(self, method: str, name: str, url: str, **kwargs: Any) -> dict[str, Any] | None:
        """One counted request. One the service defers (202: its 30 s wait ran out, the task
        goes on) is polled to its result, as the API asks of a client, and recorded once,
        from its first call to that result: served late, not failed, not finished early."""
        started = time.perf_counter()
        token = RECORDER.in_flight.began(time.time())
        try:
            with self.client.request(
                method,
                url,
                name=CALL_PREFIX + name,
                headers=self.headers,
                catch_response=True,
                **kwargs,
            ) as response:
                response.success()  # judged below, once, under the request's own name
                status, body_json = response.status_code, _json_or_none(response)
            if status == 202 and isinstance(body_json, dict):
                RECORDER.deferred += 1
                task_id = str(body_json.get("task_id"))
                status, body_json = self._poll_task(
                    task_id, CALL_PREFIX + "task status", started, DEFERRED_WAIT_S
                )
        finally:  # before it is recorded: the request that reaches the target is not left
            RECORDER.in_flight.ended(token)
        data, failure = outcome(status, body_json)
        self._record(method, name, started, failure)
        return data

    def _poll_task(self, task_id: str, name: str, started: float, wait_s: float) -> tuple[int, Any]:
        """GET /tasks/{id}, backing off, until the task is done or `wait_s` has passed."""
        delay = POLL_FIRST_S
        while time.perf_counter() - started < wait_s:
            gevent.sleep(delay)
            delay = min(delay * 2, POLL_MAX_S)
            url = f"{API_PREFIX}/tasks/{task_id}"
            with self.client.get(
                url, name=name, headers=self.headers, catch_response=True
            ) as polled:
                polled.success()
                if polled.status_code != 202:
                    return polled.status_code, _json_or_none(polled)
        return 202, None

    def _setup_post(self, name: str, path: str, body: dict[str, Any]) -> dict[str, Any] | None:
        """A set-up write that may outlast the service's wait: on a 202, poll its task
        until it is done, as a patient client would, so the user is not lost."""
        started = time.perf_counter()
        with self.client.post(
            API_PREFIX + path, name=name, json=body, headers=self.headers, catch_response=True
        ) as response:
            if response.status_code != 202:
                return self._check(response)
            response.success()
            task_id = response.json().get("task_id")
        status, answer = self._poll_task(
            task_id, SETUP_PREFIX + "task status", started, SETUP_WAIT_S
        )
        data, failure = outcome(status, answer)
        if failure is not None:  # counted among the set-up failures, under the write's name
            self._record("POST", name, started, failure)
        return data

    def _record(self, method: str, name: str, started: float, failure: str | None) -> None:
        """One request as Locust counts it, timed from `started`, failed when `failure`."""
        self.environment.events.request.fire(
            request_type=method,
            name=name,
            response_time=(time.perf_counter() - started) * 1000,
            response_length=0,
            exception=None if failure is None else _RequestFailedError(failure),
            context={},
        )

    def _create_account(self, name: str) -> str:
        data = self._setup_post(name, "/admin/new", {"password": PASSWORD})
        if data is None:
            READY[0] += 1  # it will never be ready: do not keep the others waiting
            raise gevent.GreenletExit  # no account, no user: stops this user only
        return str(data["address"])

    def _unlock(self, name: str) -> None:
        body = {"address": self.address, "password": PASSWORD, "durationS": UNLOCK_S}
        self._post(name, "/admin/unlock", body)

    def _old_hash(self) -> str:
        """A hash this user sent long enough ago to be mined (the set-up one at worst)."""
        now = time.monotonic()
        mined = [h for at, h in self.sent if now - at >= RECEIPT_AGE_S]
        return random.choice(mined) if mined else self.sent[0][1]

    # -- table 5.1 -------------------------------------------------------------------

    def eth_balance(self) -> None:
        self._get("eth_balance", "/eth/balance", address=random.choice(KNOWN_ADDRESSES))

    def coinbase(self) -> None:
        self._get("coinbase", "/conn/coinbase")

    def node_accounts(self) -> None:
        self._get("node_accounts", "/conn/accounts")

    def block_number(self) -> None:
        self._get("block_number", "/conn/blockNum")

    def create_account(self) -> None:
        self._post("create_account", "/admin/new", {"password": secrets.token_hex(8)})

    def list_accounts(self) -> None:
        self._get("list_accounts", "/admin/list")

    def unlock(self) -> None:
        self._unlock("unlock")

    def send_transaction(self) -> None:
        to = random.choice(KNOWN_ADDRESSES)
        data = self._post(
            "send_transaction", "/tx/send", {"from": self.address, "to": to, "value": 1}
        )
        if data is not None and "tx_hash" in data:
            self.sent.append((time.monotonic(), data["tx_hash"]))

    def transaction_receipt(self) -> None:
        if self.sent:
            self._get("transaction_receipt", "/tx/receipt", txHash=self._old_hash())

    def transaction_by_hash(self) -> None:
        if self.sent:
            self._get("transaction_by_hash", "/tx/txhash", txHash=self._old_hash())

    def deploy_contract(self) -> None:
        if PlatformUser.deploy_body is None:
            PlatformUser.deploy_body = _token_deploy_body()
        self._post("deploy_contract", "/contract/deploy", PlatformUser.deploy_body)


# Locust reads `tasks` when a User class is made, so the weighted table goes into a
# subclass; the base is abstract (Locust runs only the concrete one).
TableMixUser: type[PlatformUser] = type(
    "TableMixUser",
    (PlatformUser,),
    {"tasks": {getattr(PlatformUser, entry.name): entry.weight for entry in MIX}},
)


def task_weights() -> dict[str, int]:
    """How often each method appears in the user's task list (what the tests check)."""
    counts: dict[str, int] = {}
    for function in TableMixUser.tasks:
        name = getattr(function, "__name__", type(function).__name__)
        counts[name] = counts.get(name, 0) + 1
    return counts
