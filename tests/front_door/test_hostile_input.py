"""Hostile input at the real gateway: schemathesis over the OpenAPI document, fuzzed
JSON-RPC at /rpc. No 5xx, and no task on Kafka for input the gateway calls invalid."""

from __future__ import annotations

import asyncio
import json
import os
import string
import subprocess
import sys
import time
import warnings
from collections.abc import Iterable
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import httpx
import pytest
from aiokafka import AIOKafkaConsumer, TopicPartition
from aiokafka.admin import AIOKafkaAdminClient
from eth_account import Account
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st
from hypothesis.errors import HypothesisDeprecationWarning

from ethgw_wire.http_api import API_KEY_HEADER, ENDPOINTS, REQUEST_ID_HEADER
from ethgw_wire.kafka import client_options
from ethgw_wire.messages import TaskMessage
from ethgw_wire.operations import RPC_READ_METHODS, RPC_SEND_RAW
from ethgw_wire.request_auth import signing_auth
from ethgw_wire.settings import KafkaSettings
from geth_cluster.cluster import GethCluster
from tests.pipeline_fixtures import ProviderProcess, ServerProcess, Stack

pytestmark = pytest.mark.slow

# The CI profile: about 500 cases over the ~40 operations of the document.
MAX_EXAMPLES = os.environ.get("ETHGW_SCHEMATHESIS_MAX_EXAMPLES", "6")
SCHEMATHESIS_TIMEOUT_S = 600.0
# Operations that would disturb the shared session chain whatever their input: stopping
# the sealer, restarting a node. Their refusals of bad input are tested in tests/gateway.
EXCLUDED_PATHS = r"^/admin/(mining/|nodes/\{node_id\}/restart)|^/api/v1/events$"
# The positive run's operations that wait for blocks (an account's funding, a deploy or a
# mint with waitReceipt): each group runs in an `st` process of its own, at the same time
# as the others and as a last process for every other operation, so their waits overlap.
# Every operation still gets the same examples; the negative run stays one process.
POSITIVE_BLOCK_WAITERS = (
    r"^/api/v1/admin/new$",
    r"^/api/v1/accounts$",
    r"^/api/v1/(contract/deploy|token/add|token/set)$",
)
# Every check of schemathesis runs (its default: status codes, content types, headers and
# bodies conforming to the document, invalid input rejected, valid input accepted, ...),
# but two, narrowly (docs/faults.md):
# - on /rpc, "invalid data is rejected with a 4xx": JSON-RPC errors (a parse error -32700
#   for a missing body) travel in a 200, as geth's do and as every JSON-RPC client expects;
#   and on /blocks/{blockHash}, whose path it shares with /blocks/{blockNumber}: a "hash"
#   of digits is a block number there, and is answered as one;
# - on the operations with an integer bounded beyond 2^53 (uint256 amounts, uint64 times,
#   block numbers), "valid data is accepted": schemathesis makes such numbers through
#   floats, so it sends 2^256 - 1 + 4.6e57 as "the maximum", which is refused, rightly.
#   Every other check still runs on them, invalid input rejected included.
SCHEMATHESIS_CONFIG = """
[[operations]]
include-path = ["/rpc", "/api/v1/blocks/{{blockHash}}"]
checks.negative_data_rejection.enabled = false

[[operations]]
include-path = {wide_integer_paths}
checks.positive_data_acceptance.enabled = false
"""
FLOAT_EXACT_INTEGERS = 2**53


def _bounds_beyond_floats(schema: Any) -> bool:
    """Whether a JSON schema holds a bound no float holds exactly."""
    if isinstance(schema, dict):
        bounds = [schema.get(k) for k in ("maximum", "exclusiveMaximum", "minimum")]
        if any(isinstance(b, int) and abs(b) > FLOAT_EXACT_INTEGERS for b in bounds):
            return True
        return any(_bounds_beyond_floats(v) for v in schema.values())
    if isinstance(schema, list):
        return any(_bounds_beyond_floats(v) for v in schema)
    return False


def schemathesis_config() -> str:
    wide = sorted(
        e.full_path
        for e in ENDPOINTS
        if _bounds_beyond_floats(e.operation.params.model_json_schema())
    )
    return SCHEMATHESIS_CONFIG.format(wide_integer_paths=json.dumps(wide))


# What the gateway answers for input it refuses before any task exists.
REFUSAL_CODES = frozenset({"invalid_params", "body_too_large", "http_method_not_allowed"})


@dataclass(frozen=True)
class Exchange:
    method: str
    url: str
    status: int
    request_id: str | None
    error_code: str | None
    body: str  # the start of the request's body, to reproduce a failure


def exchanges_of(har_path: Path) -> list[Exchange]:
    """Every request schemathesis sent and what the gateway answered, from its HAR file."""
    entries = json.loads(har_path.read_text())["log"]["entries"]
    found = []
    for entry in entries:
        response = entry["response"]
        headers = {h["name"].lower(): h["value"] for h in response["headers"]}
        code = None
        try:
            body = json.loads(response["content"].get("text") or "null")
        except ValueError:
            body = None
        if isinstance(body, dict) and isinstance(body.get("error"), dict):
            code = body["error"].get("code")
        found.append(
            Exchange(
                entry["request"]["method"],
                entry["request"]["url"],
                response["status"],
                headers.get(REQUEST_ID_HEADER.lower()),
                code,
                (entry["request"].get("postData") or {}).get("text", "")[:300],
            )
        )
    return found


async def end_offsets(settings: KafkaSettings) -> dict[TopicPartition, int]:
    consumer = AIOKafkaConsumer(**client_options(settings))
    await consumer.start()
    try:
        partitions = [
            TopicPartition(topic, p)
            for topic in (settings.topic_read, settings.topic_write)
            for p in consumer.partitions_for_topic(topic) or range(settings.task_partitions)
        ]
        return dict(await consumer.end_offsets(partitions))
    finally:
        await consumer.stop()


async def tasks_since(
    settings: KafkaSettings, start: dict[TopicPartition, int]
) -> list[TaskMessage]:
    """Every task put on the read and write topics after the `start` offsets."""
    end = await end_offsets(settings)
    consumer = AIOKafkaConsumer(**client_options(settings), enable_auto_commit=False)
    await consumer.start()
    tasks: list[TaskMessage] = []
    try:
        wanted = {tp: end[tp] for tp in end if end[tp] > start.get(tp, 0)}
        if not wanted:
            return tasks
        consumer.assign(list(wanted))
        for tp in wanted:
            consumer.seek(tp, start.get(tp, 0))
        async with asyncio.timeout(60):
            while [tp for tp in wanted if await consumer.position(tp) < wanted[tp]]:
                batches = await consumer.getmany(timeout_ms=500)
                for records in batches.values():
                    tasks.extend(TaskMessage.model_validate_json(r.value) for r in records)
        return tasks
    finally:
        await consumer.stop()


@dataclass(frozen=True)
class OperationGroup:
    """The operations one `st` process covers: the paths `regex` matches (`--include`), or
    those it does not match (`--exclude`). A filter that matches nothing is only warned
    of, so a group whose include matches nothing fails instead: `st` finds no operation."""

    name: str
    flag: str  # "--include-path-regex" or "--exclude-path-regex"
    regex: str


def operation_groups(mode: str) -> list[OperationGroup]:
    """One group for the negative run; for the positive run, one per block waiter and one
    for the rest, so that no operation is in two groups or in none."""
    if mode != "positive":
        return [OperationGroup(mode, "--exclude-path-regex", EXCLUDED_PATHS)]
    waiters = [
        OperationGroup(f"{mode}-{n}", "--include-path-regex", regex)
        for n, regex in enumerate(POSITIVE_BLOCK_WAITERS, start=1)
    ]
    rest = "|".join([EXCLUDED_PATHS, *POSITIVE_BLOCK_WAITERS])
    return [*waiters, OperationGroup(f"{mode}-rest", "--exclude-path-regex", rest)]


def run_schemathesis(
    stack: Stack, report_dir: Path, mode: str, group: OperationGroup
) -> subprocess.CompletedProcess[str]:
    """One `st` process over `group`'s operations, in a folder of its own (its hypothesis
    database), writing `<group>.har` in `report_dir`."""
    har = report_dir / f"{group.name}.har"
    workdir = report_dir / group.name
    workdir.mkdir()
    config = workdir / "schemathesis.toml"
    config.write_text(schemathesis_config())
    command = [
        str(Path(sys.executable).with_name("st")),
        "--config-file",
        str(config),
        "run",
        f"{stack.gateway.url}/openapi.json",
        "--mode",
        mode,
        "--max-examples",
        MAX_EXAMPLES,
        "--seed",
        "20261201",
        "--phases",
        "examples,coverage,fuzzing",
        # One worker: hypothesis describes filter lambdas with ast.parse, which CPython 3.11
        # can fail in concurrent threads ("AST constructor recursion depth mismatch").
        "--workers",
        "1",
        "--request-timeout",
        "60",
        group.flag,
        group.regex,
        "--header",
        f"X-API-Key: {stack.admin_key}",
        "--report",
        "har",
        "--report-har-path",
        str(har),
        "--no-color",
    ]
    return subprocess.run(
        command,
        capture_output=True,
        text=True,
        timeout=SCHEMATHESIS_TIMEOUT_S,
        cwd=workdir,
    )


def server_errors(exchanges: Iterable[Exchange]) -> list[Exchange]:
    return [e for e in exchanges if e.status >= 500]


@pytest.mark.timeout(SCHEMATHESIS_TIMEOUT_S + 120)  # the run's own bound fires first
@pytest.mark.parametrize("mode", ["positive", "negative"])
async def test_schemathesis_finds_no_failure(stack: Stack, tmp_path: Path, mode: str) -> None:
    """schemathesis over the gateway's OpenAPI document, every check on: no 5xx, and every
    answer's status, content type and body as the document says."""
    settings = KafkaSettings()
    before = await end_offsets(settings)
    groups = operation_groups(mode)
    results = await asyncio.gather(
        *(asyncio.to_thread(run_schemathesis, stack, tmp_path, mode, g) for g in groups)
    )
    for result in results:
        print(result.stdout)
    exchanges = [e for g in groups for e in exchanges_of(tmp_path / f"{g.name}.har")]
    tasks = await tasks_since(settings, before)
    print(f"schemathesis mode={mode}: {len(exchanges)} requests, {len(tasks)} tasks on Kafka")
    refused = {e.request_id: e for e in exchanges if e.error_code in REFUSAL_CODES}
    leaked = [refused[t.request_id] for t in tasks if t.request_id in refused]
    errors = server_errors(exchanges)
    assert errors == [], "\n".join(map(repr, errors))
    for result in results:
        assert result.returncode == 0, result.stdout[-6000:]
    assert leaked == []


# -- fuzzed JSON-RPC at /rpc -------------------------------------------------------------------

RPC_EXAMPLES = 150
DENIED_PREFIXES = ("personal_", "admin_", "miner_", "debug_")
ALLOWED = (*RPC_READ_METHODS, RPC_SEND_RAW)
BATCH_LIMIT = 50  # GatewaySettings.rpc_batch_limit, the session gateway's

_scalars = st.none() | st.booleans() | st.integers() | st.floats(allow_nan=False) | st.text()
_json = st.recursive(
    _scalars,
    lambda inner: (
        st.lists(inner, max_size=4) | st.dictionaries(st.text(max_size=8), inner, max_size=4)
    ),
    max_leaves=12,
)
_ids = st.integers(min_value=0, max_value=2**53) | st.text(min_size=1, max_size=12)
_params = st.lists(_json, max_size=4)


def _call(
    method: st.SearchStrategy[Any], **members: st.SearchStrategy[Any]
) -> st.SearchStrategy[Any]:
    base = {"jsonrpc": st.just("2.0"), "id": _ids, "method": method, "params": _params}
    return st.fixed_dictionaries({**base, **members})


_denied_method = st.builds(
    lambda prefix, rest: prefix + rest,
    st.sampled_from(DENIED_PREFIXES),
    st.text(alphabet=string.ascii_letters, max_size=16),
)
_allowed_method = st.sampled_from(ALLOWED)
# Every call here is refused by the gateway itself: it must never become a task.
_invalid_call = st.one_of(
    _call(_denied_method),
    _call(st.text(max_size=40).filter(lambda m: m not in ALLOWED)),
    _call(_allowed_method, jsonrpc=_scalars.filter(lambda v: v != "2.0")),
    _call(_json.filter(lambda m: not isinstance(m, str))),
    _call(
        _allowed_method,
        id=st.booleans()
        | st.lists(_scalars, max_size=2)
        | st.dictionaries(st.text(max_size=3), _scalars, max_size=2),
    ),
    _call(
        _allowed_method, params=st.dictionaries(st.text(max_size=8), _json, min_size=1, max_size=3)
    ),
    _call(_allowed_method, params=st.text() | st.integers() | st.booleans()),
    _call(_allowed_method, params=st.lists(_scalars, min_size=17, max_size=30)),
    _scalars,
)
_invalid_body = st.one_of(
    _invalid_call.map(json.dumps),
    st.lists(_invalid_call, min_size=1, max_size=12).map(json.dumps),
    st.lists(_call(_allowed_method), min_size=BATCH_LIMIT + 1, max_size=BATCH_LIMIT + 40).map(
        json.dumps
    ),
    st.just("[]"),
    st.binary(max_size=64).filter(lambda b: not _is_json(b)),
)
# Raw transactions that are no signed transaction: the service refuses them (-32602).
_bad_raw_tx = st.sampled_from(["0x", "0x00", "0xc0", "0xdeadbeef", "0x" + "f8" * 40]) | _scalars
# Allowed methods with garbage params: forwarded (the service or the node judges them),
# and answered.
_garbage_call_body = st.one_of(
    _call(_allowed_method),
    _call(st.just(RPC_SEND_RAW), params=st.lists(_bad_raw_tx, min_size=1, max_size=1)),
).map(json.dumps)


def _is_json(body: bytes) -> bool:
    try:
        json.loads(body)
    except ValueError:
        return False
    return True


def _is_error_object(item: Any) -> bool:
    return (
        isinstance(item, dict)
        and item.get("jsonrpc") == "2.0"
        and isinstance(item.get("error"), dict)
        and isinstance(item["error"].get("code"), int)
        and isinstance(item["error"].get("message"), str)
    )


def fuzz_rpc(gateway_url: str, key: str, sent: list[str]) -> None:
    """Hypothesis-generated bodies at /rpc (in this thread, with a blocking client)."""
    with httpx.Client(base_url=gateway_url, timeout=60, headers={API_KEY_HEADER: key}) as client:

        @settings(
            max_examples=RPC_EXAMPLES,
            deadline=None,
            database=None,
            derandomize=True,
            suppress_health_check=[HealthCheck.too_slow, HealthCheck.data_too_large],
        )
        @given(invalid=_invalid_body, garbage=_garbage_call_body)
        def probe(invalid: str | bytes, garbage: str) -> None:
            request_id = f"rpcfuzz-bad-{len(sent)}"
            sent.append(request_id)
            refused = client.post(
                "/rpc",
                content=invalid,
                headers={REQUEST_ID_HEADER: request_id, "content-type": "application/json"},
            )
            assert refused.status_code < 500, (invalid, refused.text)
            body = refused.json()
            items = body if isinstance(body, list) else [body]
            assert items, (invalid, body)
            assert all(_is_error_object(i) for i in items), (invalid, body)
            answered = client.post(
                "/rpc",
                content=garbage,
                headers={
                    REQUEST_ID_HEADER: f"rpcfuzz-ok-{len(sent)}",
                    "content-type": "application/json",
                },
            )
            assert answered.status_code < 500, (garbage, answered.text)
            response = answered.json()
            assert isinstance(response, dict), response
            assert response.get("jsonrpc") == "2.0", response
            assert "result" in response or _is_error_object(response), (garbage, response)

        # Hypothesis warns when the global `random` state moves during a draw; here the event
        # loop's thread (Kafka clients, the registry beat) moves it, not our strategies.
        with warnings.catch_warnings():
            warnings.simplefilter("ignore", HypothesisDeprecationWarning)
            probe()


async def test_fuzzed_json_rpc_gets_error_objects_and_queues_nothing_invalid(
    stack: Stack, geth_cluster: GethCluster
) -> None:
    """Fuzzed /rpc bodies: never a 5xx, JSON-RPC error objects, no task for a refused call,
    and afterwards every instance is healthy and no breaker counts a failure."""
    settings_ = KafkaSettings()
    before = await end_offsets(settings_)
    sent: list[str] = []
    await asyncio.to_thread(fuzz_rpc, stack.gateway.url, stack.user_key, sent)
    tasks = await tasks_since(settings_, before)
    leaked = [t for t in tasks if (t.request_id or "").startswith("rpcfuzz-bad-")]
    forwarded = [t for t in tasks if (t.request_id or "").startswith("rpcfuzz-ok-")]
    print(f"rpc fuzz: {len(sent)} refused bodies, {len(forwarded)} forwarded calls became tasks")
    assert leaked == []
    assert forwarded  # the check can see tasks: the garbage calls made some
    async with httpx.AsyncClient(timeout=60, auth=signing_auth()) as client:
        await assert_every_instance_serves(client, stack, geth_cluster)


# -- one batch that turned off every write -------------------------------------------------


def _call_each(method: str, params: list[Any], count: int) -> list[dict[str, Any]]:
    return [{"jsonrpc": "2.0", "id": n, "method": method, "params": params} for n in range(count)]


async def unhealthy_instances(client: httpx.AsyncClient, stack: Stack) -> list[dict[str, Any]]:
    """The instances whose breaker is not closed or counts failures (GET /admin/instances)."""
    answer = await client.get(
        f"{stack.gateway.url}/admin/instances", headers={API_KEY_HEADER: stack.admin_key}
    )
    views: list[dict[str, Any]] = answer.json()["data"]
    assert views, "no instance is registered"
    return [v for v in views if v["breaker"] != "closed" or v["consecutive_failures"]]


async def direct_call(
    client: httpx.AsyncClient, instance: ServerProcess, method: str, params: list[Any]
) -> dict[str, Any]:
    """One JSON-RPC call asked of an instance itself, not through the gateway."""
    call = {"jsonrpc": "2.0", "id": 1, "method": method, "params": params}
    answer = await client.post(f"{instance.url}/api/v1/rpc", json=call)
    assert answer.headers["content-type"] == "application/json", answer.text
    body: dict[str, Any] = answer.json()
    return body


async def assert_every_instance_serves(
    client: httpx.AsyncClient, stack: Stack, geth_cluster: GethCluster
) -> None:
    """No breaker counts a failure, each read instance answers a read and each write
    instance sends a valid transaction."""
    assert await unhealthy_instances(client, stack) == []
    for reader in stack.readers:
        read = await direct_call(client, reader, "eth_blockNumber", [])
        assert int(read["result"], 16) > 0, (reader.url, read)
    transactions = await signed_transfers(stack, geth_cluster, len(stack.writers))
    for writer, raw in zip(stack.writers, transactions, strict=True):
        sent = await direct_call(client, writer, RPC_SEND_RAW, [raw])
        assert str(sent.get("result", "")).startswith("0x"), (writer.url, sent)


async def signed_transfers(stack: Stack, geth_cluster: GethCluster, count: int) -> list[str]:
    """`count` faucet transfers with consecutive nonces, signed here."""
    faucet = geth_cluster.accounts.faucet
    async with httpx.AsyncClient(timeout=60, headers={API_KEY_HEADER: stack.admin_key}) as client:
        calls = [
            {"jsonrpc": "2.0", "id": 1, "method": "eth_chainId", "params": []},
            {
                "jsonrpc": "2.0",
                "id": 2,
                "method": "eth_getTransactionCount",
                "params": [faucet.address, "pending"],
            },
        ]
        chain, pending = (await client.post(f"{stack.gateway.url}/rpc", json=calls)).json()
    chain_id, nonce = int(chain["result"], 16), int(pending["result"], 16)
    transactions = []
    for offset in range(count):
        tx = {
            "to": "0x" + "17" * 20,
            "value": 1,
            "gas": 21_000,
            "gasPrice": 2 * 10**9,
            "nonce": nonce + offset,
            "chainId": chain_id,
        }
        raw = Account.sign_transaction(tx, faucet.private_key()).raw_transaction
        transactions.append("0x" + bytes(raw).hex())
    return transactions


async def test_a_batch_of_empty_raw_transactions_turns_off_no_write(
    stack: Stack, geth_cluster: GethCluster
) -> None:
    """A user's batch of eth_sendRawTransaction ["0x"]: -32602 naming the param for each
    call, no breaker counts it, and each write instance still sends a valid transaction."""
    async with httpx.AsyncClient(timeout=60, auth=signing_auth()) as client:
        refused = await client.post(
            f"{stack.gateway.url}/rpc",
            json=_call_each(RPC_SEND_RAW, ["0x"], BATCH_LIMIT),
            headers={API_KEY_HEADER: stack.user_key},
        )
        errors = [item["error"] for item in refused.json()]
        assert {e["code"] for e in errors} == {-32602}, errors[:3]
        assert all("params[0] (signed_transaction) is empty" in e["message"] for e in errors)
        await assert_every_instance_serves(client, stack, geth_cluster)


# -- heavy calls: a result too large for Kafka, a wide eth_getLogs, a key's flood ------------

# Runtime code that returns 1.1 MB of zeros: PUSH3 1100000, PUSH1 0, RETURN (~2.4M gas of
# memory, within the call gas cap). Hex-encoded, the result is 2.2 MB: over the 1 MiB a
# Kafka record may be, so before the bound it could never be published.
HUGE_RETURN_CODE = "0x" + "62" + f"{1_100_000:06x}" + "6000" + "f3"
HUGE_CONTRACT = "0x" + "5a" * 20
HEAVY_LIMIT = 4  # GatewaySettings.heavy_calls_per_key, the session gateway's
PROVIDER_GROUP = "ethgw-providers"  # the session provider's (ProviderSettings.group_id)
PROMPT_S = 10.0  # the answer came after the services' 30 s wait before the bound


def _huge_call(call_id: int = 1) -> dict[str, Any]:
    params = [{"to": HUGE_CONTRACT}, "latest", {HUGE_CONTRACT: {"code": HUGE_RETURN_CODE}}]
    return {"jsonrpc": "2.0", "id": call_id, "method": "eth_call", "params": params}


async def task_record(
    settings: KafkaSettings, start: dict[TopicPartition, int], request_id: str
) -> tuple[TopicPartition, int, str]:
    """Where the task of `request_id` sits on the task topics (after the `start` offsets),
    and its task id."""
    end = await end_offsets(settings)
    consumer = AIOKafkaConsumer(**client_options(settings), enable_auto_commit=False)
    await consumer.start()
    try:
        wanted = [tp for tp in end if end[tp] > start.get(tp, 0)]
        consumer.assign(wanted)
        for tp in wanted:
            consumer.seek(tp, start.get(tp, 0))
        async with asyncio.timeout(60):
            while [tp for tp in wanted if await consumer.position(tp) < end[tp]]:
                for tp, records in (await consumer.getmany(timeout_ms=500)).items():
                    for record in records:
                        task = TaskMessage.model_validate_json(record.value)
                        if task.request_id == request_id:
                            return tp, record.offset, task.task_id
    finally:
        await consumer.stop()
    raise AssertionError(f"no task of request {request_id} on the task topics")


async def committed_offset(settings: KafkaSettings, tp: TopicPartition) -> int:
    """The providers' committed offset of one task partition (-1: none)."""
    admin = AIOKafkaAdminClient(**client_options(settings))
    await admin.start()
    try:
        offsets = await admin.list_consumer_group_offsets(PROVIDER_GROUP, partitions=[tp])
    finally:
        await admin.close()
    found = offsets.get(tp)
    return -1 if found is None else found.offset


async def test_an_eth_call_returning_1_1_mb_is_refused_promptly_and_its_task_ends(
    stack: Stack, provider: ProviderProcess
) -> None:
    """The issue's attack: an eth_call whose state override returns 1.1 MB answers -32005
    result_too_large within PROMPT_S, its task's offset commits (it cannot come back after
    a restart), the provider never retries its publication, and serves the next call."""
    settings_ = KafkaSettings()
    before = await end_offsets(settings_)
    request_id = "heavy-result-1"
    async with httpx.AsyncClient(timeout=60, headers={API_KEY_HEADER: stack.user_key}) as client:
        started = time.monotonic()
        answer = await client.post(
            f"{stack.gateway.url}/rpc", json=_huge_call(), headers={REQUEST_ID_HEADER: request_id}
        )
        elapsed = time.monotonic() - started
        after = await client.post(
            f"{stack.gateway.url}/rpc",
            json={"jsonrpc": "2.0", "id": 2, "method": "eth_blockNumber", "params": []},
        )
    print(f"1.1 MB eth_call answered in {elapsed:.2f} s: {answer.text[:300]}")
    error = answer.json()["error"]
    assert error["code"] == -32005
    assert error["data"]["code"] == "result_too_large"
    assert "over the limit of 524288 bytes" in error["message"]
    assert elapsed < PROMPT_S
    assert int(after.json()["result"], 16) > 0
    tp, offset, task_id = await task_record(settings_, before, request_id)
    async with asyncio.timeout(15):
        while await committed_offset(settings_, tp) <= offset:  # noqa: ASYNC110 (another process)
            await asyncio.sleep(0.5)
    lines = provider.log().splitlines()
    assert not [x for x in lines if "result_not_published" in x and f"task_id={task_id}" in x]
    assert [x for x in lines if "event=result_too_large" in x and f"task_id={task_id}" in x]


async def test_a_wide_get_logs_and_a_call_over_the_gas_cap_are_refused_before_any_task(
    stack: Stack,
) -> None:
    """eth_getLogs over 100,000 blocks and an eth_call asking 1e9 gas: -32602 naming the
    param and the cap, and no task on Kafka."""
    settings_ = KafkaSettings()
    before = await end_offsets(settings_)
    wide = {"fromBlock": "0x0", "toBlock": hex(100_000), "address": HUGE_CONTRACT}
    calls = [
        {"jsonrpc": "2.0", "id": 1, "method": "eth_getLogs", "params": [wide]},
        {
            "jsonrpc": "2.0",
            "id": 2,
            "method": "eth_call",
            "params": [{"to": HUGE_CONTRACT, "gas": hex(10**9)}, "latest"],
        },
    ]
    async with httpx.AsyncClient(timeout=60, headers={API_KEY_HEADER: stack.user_key}) as client:
        answer = await client.post(
            f"{stack.gateway.url}/rpc", json=calls, headers={REQUEST_ID_HEADER: "heavy-wide-1"}
        )
    logs, gas = (item["error"] for item in answer.json())
    assert logs["code"] == gas["code"] == -32602
    assert "params[0] (filter) spans 100001 blocks" in logs["message"]
    assert "the cap is 2000 blocks per eth_getLogs" in logs["message"]
    assert "params[0] (transaction) gas 1000000000 exceeds the cap" in gas["message"]
    if await end_offsets(settings_) != before:  # tasks of something else: none may be ours
        tasks = await tasks_since(settings_, before)
        assert [t for t in tasks if t.request_id == "heavy-wide-1"] == []


async def test_a_key_over_its_heavy_limit_is_refused_while_another_key_is_served(
    stack: Stack,
) -> None:
    """A user key's batch of HEAVY_LIMIT + 2 eth_call: HEAVY_LIMIT answered, 2 refused with
    -32005 heavy_calls_limited; another key's eth_call sent meanwhile is answered."""
    burst = [
        {
            "jsonrpc": "2.0",
            "id": n,
            "method": "eth_call",
            "params": [{"to": HUGE_CONTRACT}, "latest", {HUGE_CONTRACT: {"code": "0x00"}}],
        }
        for n in range(HEAVY_LIMIT + 2)
    ]
    other = {
        "jsonrpc": "2.0",
        "id": 9,
        "method": "eth_call",
        "params": [{"to": HUGE_CONTRACT}, "latest"],
    }
    async with httpx.AsyncClient(timeout=60) as client:
        flood, served = await asyncio.gather(
            client.post(
                f"{stack.gateway.url}/rpc", json=burst, headers={API_KEY_HEADER: stack.user_key}
            ),
            client.post(
                f"{stack.gateway.url}/rpc", json=other, headers={API_KEY_HEADER: stack.admin_key}
            ),
        )
    answers = flood.json()
    refused = [a for a in answers if "error" in a]
    assert [a["result"] for a in answers if "result" in a] == ["0x"] * HEAVY_LIMIT
    assert [a["id"] for a in refused] == [HEAVY_LIMIT, HEAVY_LIMIT + 1]
    assert {a["error"]["code"] for a in refused} == {-32005}
    assert {a["error"]["data"]["code"] for a in refused} == {"heavy_calls_limited"}
    assert served.json()["result"] == "0x"


# -- passwords on Kafka --------------------------------------------------------------------


async def test_passwords_reach_kafka_sealed_never_in_clear(stack: Stack) -> None:
    """An account made and unlocked through the gateway: both tasks on the write topic
    hold the password sealed (`sealed`, not `params`), no record holds its bytes, and the
    unlock works (the provider opened it)."""
    settings_ = KafkaSettings()
    before = await end_offsets(settings_)
    password = f"never-in-clear-{os.urandom(4).hex()}"
    headers = {API_KEY_HEADER: stack.user_key}
    async with httpx.AsyncClient(base_url=stack.api, timeout=60, headers=headers) as client:
        made = await client.post("/admin/new", json={"password": password})
        assert made.status_code == 200, made.text
        address = made.json()["data"]["address"]
        body = {"address": address, "password": password}
        unlocked = await client.post("/admin/unlock", json=body)
        assert unlocked.status_code == 200, unlocked.text
    tasks = await tasks_since(settings_, before)
    ours = {made.json()["task_id"], unlocked.json()["task_id"]}
    carried = [t for t in tasks if t.task_id in ours]
    assert len(carried) == 2
    for task in carried:
        assert "password" not in task.params
        assert set(task.sealed) == {"password"}
    assert not [t for t in tasks if password in t.model_dump_json()]
