"""The write service's own routes, in this process with a fake task runner."""

from __future__ import annotations

from eth_account import Account

from ethgw_wire.callers import CALLER_HEADER, Caller
from ethgw_wire.messages import ErrorInfo
from tests.services.fakes import FakeTasks, serving
from write_service.app import create_app
from write_service.config import WriteServiceSettings

# A signed transaction: its ordering key is its sender, recovered from the signature.
SIGNER = Account.create()
SIGNED = (
    "0x"
    + bytes(
        SIGNER.sign_transaction(
            {
                "to": "0x" + "55" * 20,
                "value": 1,
                "gas": 21_000,
                "gasPrice": 10**9,
                "nonce": 0,
                "chainId": 1337,
            }
        ).raw_transaction
    ).hex()
)


async def test_a_write_route_runs_its_operation_ordered_by_its_signer() -> None:
    """POST /tx/send runs eth.send keyed by the sender, and answers 200 with the data."""
    tasks = FakeTasks(data={"tx_hash": "0x" + "11" * 32, "status": "mined"})
    sender = "0x" + "22" * 20
    body = {"from": sender, "to": "0x" + "33" * 20, "value": 5, "waitReceipt": True}
    async with serving(create_app(WriteServiceSettings()), tasks) as client:
        response = await client.post("/api/v1/tx/send", json=body)
    assert response.status_code == 200
    assert response.json()["data"]["status"] == "mined"
    assert tasks.ran[0].operation == "eth.send"
    assert tasks.ran[0].account is not None
    assert tasks.ran[0].account.lower() == sender


async def test_a_write_whose_wait_runs_out_answers_202_with_its_task_id() -> None:
    """No result within the wait: 202, and the task id where the result will be."""
    tasks = FakeTasks(outcome=None)
    async with serving(create_app(WriteServiceSettings()), tasks) as client:
        response = await client.post("/api/v1/admin/new", json={"password": "long enough pw"})
    body = response.json()
    assert response.status_code == 202
    assert body["task_id"] == tasks.ran[0].task_id
    assert f"/api/v1/tasks/{body['task_id']}" in body["message"]


async def test_a_failed_write_answers_the_status_of_its_error_code() -> None:
    """A task failed with account_locked answers 409, retriable, naming the code."""
    locked = ErrorInfo(code="account_locked", message="locked", retriable=True)
    tasks = FakeTasks(outcome="failed", error=locked)
    body = {"from": "0x" + "22" * 20, "to": "0x" + "33" * 20, "value": 1}
    async with serving(create_app(WriteServiceSettings()), tasks) as client:
        response = await client.post("/api/v1/tx/send", json=body)
    assert response.status_code == 409
    assert response.json()["error"]["code"] == "account_locked"
    assert response.json()["error"]["retriable"] is True


async def test_the_gateways_caller_stamp_goes_into_the_task() -> None:
    """The caller header the gateway sets is the task's caller, for the provider."""
    tasks = FakeTasks()
    body = {"from": "0x" + "22" * 20, "to": "0x" + "33" * 20, "value": 1}
    async with serving(create_app(WriteServiceSettings()), tasks) as client:
        await client.post("/api/v1/tx/send", json=body, headers={CALLER_HEADER: "user:0abc"})
    assert tasks.ran[0].caller == Caller(key_id="0abc", role="user")


async def test_a_malformed_caller_stamp_is_refused_before_any_task() -> None:
    """A caller header that names no key is 422 naming the header, never a platform task."""
    tasks = FakeTasks()
    body = {"from": "0x" + "22" * 20, "to": "0x" + "33" * 20, "value": 1}
    async with serving(create_app(WriteServiceSettings()), tasks) as client:
        response = await client.post(
            "/api/v1/tx/send", json=body, headers={CALLER_HEADER: "root:everything"}
        )
        rpc = await client.post(
            "/api/v1/rpc",
            json={"jsonrpc": "2.0", "id": 1, "method": "eth_sendRawTransaction", "params": []},
            headers={CALLER_HEADER: "nobody"},
        )
    assert response.status_code == 422
    assert response.json()["error"]["field"] == CALLER_HEADER
    assert rpc.json()["error"]["code"] == -32600
    assert tasks.ran == []


async def test_a_missing_field_is_refused_before_any_task() -> None:
    """A body without `password` answers 422 naming it, and no task runs."""
    tasks = FakeTasks()
    async with serving(create_app(WriteServiceSettings()), tasks) as client:
        response = await client.post("/api/v1/admin/unlock", json={"address": "0x" + "11" * 20})
    assert response.status_code == 422
    assert response.json()["error"]["field"] == "password"
    assert tasks.ran == []


async def test_a_raw_transaction_answers_its_hash_alone() -> None:
    """eth_sendRawTransaction runs rpc.send_raw and its JSON-RPC result is the tx hash."""
    tx_hash = "0x" + "44" * 32
    tasks = FakeTasks(data={"tx_hash": tx_hash, "nonce": 0, "status": "sent"})
    call = {"jsonrpc": "2.0", "id": "a", "method": "eth_sendRawTransaction", "params": [SIGNED]}
    async with serving(create_app(WriteServiceSettings()), tasks) as client:
        response = await client.post("/api/v1/rpc", json=call)
    assert response.json() == {"jsonrpc": "2.0", "id": "a", "result": tx_hash}
    assert tasks.ran[0].operation == "rpc.send_raw"
    assert tasks.ran[0].params["rawTx"] == SIGNED
    assert tasks.ran[0].account == SIGNER.address


async def test_a_raw_transaction_takes_exactly_one_param() -> None:
    """eth_sendRawTransaction with two params is -32602 saying so, and no task runs."""
    tasks = FakeTasks()
    call = {"jsonrpc": "2.0", "id": 1, "method": "eth_sendRawTransaction", "params": [SIGNED, 1]}
    async with serving(create_app(WriteServiceSettings()), tasks) as client:
        response = await client.post("/api/v1/rpc", json=call)
    error = response.json()["error"]
    assert error["code"] == -32602
    assert "takes 1 param" in error["message"]
    assert tasks.ran == []


async def test_a_json_rpc_read_is_not_a_write() -> None:
    """eth_blockNumber on the write service is -32601, and no task runs."""
    tasks = FakeTasks()
    call = {"jsonrpc": "2.0", "id": 1, "method": "eth_blockNumber"}
    async with serving(create_app(WriteServiceSettings()), tasks) as client:
        response = await client.post("/api/v1/rpc", json=call)
    assert response.json()["error"]["code"] == -32601
    assert tasks.ran == []


async def test_healthz_names_the_write_kind() -> None:
    """/healthz says the instance is a write service."""
    async with serving(create_app(WriteServiceSettings()), FakeTasks()) as client:
        response = await client.get("/healthz")
    assert response.json() == {"status": "ok", "kind": "write"}
