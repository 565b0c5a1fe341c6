"""Routing, balancing, breakers, retries and pass-through, on real servers."""

from __future__ import annotations

import asyncio
import time

from ethgw_wire.callers import CALLER_HEADER
from ethgw_wire.http_api import REQUEST_ID_HEADER
from gateway.breaker import BreakerState
from tests.gateway.conftest import Fakes, Gateway, StartGateway
from tests.gateway.servers import UNKNOWN_TASK

ADDRESS = "0x" + "ab" * 20
TASK = "ab" * 16
RECIPIENT = "0x" + "cd" * 20
TRANSFER: dict[str, object] = {"from": ADDRESS, "to": RECIPIENT, "value": 5}


async def test_get_goes_to_a_read_instance_and_post_to_a_write_instance(
    wired: Gateway, fakes: Fakes
) -> None:
    """GET routes reach read instances, POST routes write instances."""
    async with wired.client() as client:
        read = await client.get("/api/v1/token/balance", params={"address": ADDRESS})
        write = await client.post("/api/v1/token/transfer", json=TRANSFER)
    assert read.status_code == 200
    assert read.json()["data"]["instance"].startswith("read-")
    assert write.status_code == 200
    assert write.json()["data"]["instance"].startswith("write-")
    assert len(fakes.read_a.seen) + len(fakes.read_b.seen) == 1
    assert len(fakes.write_a.seen) + len(fakes.write_b.seen) == 1


async def test_client_query_and_body_are_forwarded_unchanged(wired: Gateway, fakes: Fakes) -> None:
    """The service gets the client's own query string and body bytes."""
    body = f'{{"from":"{ADDRESS}","to":"{RECIPIENT}","value":5}}'.encode()
    async with wired.client() as client:
        await client.get("/api/v1/token/balance", params={"address": ADDRESS})
        await client.post(
            "/api/v1/token/transfer", content=body, headers={"content-type": "application/json"}
        )
    read = next(s for f in (fakes.read_a, fakes.read_b) for s in f.seen)
    write = next(s for f in (fakes.write_a, fakes.write_b) for s in f.seen)
    assert (read.path, read.query) == ("/api/v1/token/balance", f"address={ADDRESS}")
    assert write.body == body


async def test_round_robin_between_two_read_instances(wired: Gateway, fakes: Fakes) -> None:
    """Successive GETs alternate between the two healthy read instances."""
    async with wired.client() as client:
        answers = [await client.get("/api/v1/conn/blockNum") for _ in range(6)]
    served = [a.json()["data"]["instance"] for a in answers]
    assert sorted(set(served)) == ["read-a", "read-b"]
    assert all(served[i] != served[i + 1] for i in range(5))


async def test_dead_instance_opens_its_breaker_and_the_other_serves(
    gateway: Gateway, fakes: Fakes, dead_url: str
) -> None:
    """Connections refused by one instance open its breaker; every GET still succeeds."""
    await gateway.register(fakes.read_a)
    await gateway.register_url("read-dead", "read", dead_url)
    async with gateway.client() as client:
        answers = [await client.get("/api/v1/conn/blockNum") for _ in range(6)]
    assert [a.status_code for a in answers] == [200] * 6
    assert len(fakes.read_a.seen) == 6
    dead = gateway.instance("read-dead")
    assert dead.breaker.state(time.monotonic()) is BreakerState.OPEN


async def test_get_is_retried_once_on_another_instance(gateway: Gateway, fakes: Fakes) -> None:
    """A GET that crashes one instance is answered by the other, one call each."""
    fakes.read_a.mode = "crash"
    await gateway.register(fakes.read_a, fakes.read_b)
    async with gateway.client() as client:
        # A fresh registry starts its round robin at the first id: read-a.
        answer = await client.get("/api/v1/conn/blockNum")
    assert answer.status_code == 200
    assert answer.json()["data"]["instance"] == "read-b"
    assert (len(fakes.read_a.seen), len(fakes.read_b.seen)) == (1, 1)


async def test_get_is_retried_only_once(gateway: Gateway, fakes: Fakes) -> None:
    """With both instances crashing a GET fails after two calls, with a 502 envelope."""
    fakes.read_a.mode = fakes.read_b.mode = "crash"
    await gateway.register(fakes.read_a, fakes.read_b)
    async with gateway.client() as client:
        answer = await client.get("/api/v1/conn/blockNum")
    assert answer.status_code == 502
    assert answer.json()["error"] == {
        "code": "upstream_failed",
        "reason": "the read service failed to answer (bad_answer)",
        "retriable": True,
    }
    assert len(fakes.read_a.seen) + len(fakes.read_b.seen) == 2


async def test_post_that_reached_an_instance_is_not_retried(gateway: Gateway, fakes: Fakes) -> None:
    """A write whose instance crashed is answered 502, never sent to a second instance."""
    fakes.write_a.mode = fakes.write_b.mode = "crash"
    await gateway.register(fakes.write_a, fakes.write_b)
    async with gateway.client() as client:
        answer = await client.post("/api/v1/token/transfer", json=TRANSFER)
    assert answer.status_code == 502
    assert len(fakes.write_a.seen) + len(fakes.write_b.seen) == 1


async def test_post_that_timed_out_is_not_retried(gateway: Gateway, fakes: Fakes) -> None:
    """A write whose instance did not answer in time gets 504 and no second submission."""
    fakes.write_a.mode = fakes.write_b.mode = "hang"
    await gateway.register(fakes.write_a, fakes.write_b)
    async with gateway.client() as client:
        answer = await client.post("/api/v1/token/transfer", json=TRANSFER)
    assert answer.status_code == 504
    assert answer.json()["error"]["code"] == "upstream_timeout"
    assert len(fakes.write_a.seen) + len(fakes.write_b.seen) == 1


async def test_post_refused_at_connect_goes_to_another_instance(
    gateway: Gateway, fakes: Fakes, dead_url: str
) -> None:
    """A write whose connection was refused (nothing sent) is sent to the other instance."""
    await gateway.register_url("write-0-dead", "write", dead_url)
    await gateway.register(fakes.write_a)
    async with gateway.client() as client:
        answers = [await client.post("/api/v1/token/transfer", json=TRANSFER) for _ in range(2)]
    assert [a.status_code for a in answers] == [200, 200]
    assert len(fakes.write_a.seen) == 2


async def test_no_instance_is_a_503_with_retry_after(gateway: Gateway) -> None:
    """With no instance registered the gateway answers a retriable 503 envelope."""
    async with gateway.client() as client:
        answer = await client.post("/api/v1/token/transfer", json=TRANSFER)
    assert answer.status_code == 503
    assert answer.headers["retry-after"] == "1"
    body = answer.json()
    assert body["status"] == 503
    assert body["error"]["code"] == "service_unavailable"
    assert body["error"]["retriable"] is True
    assert "no write service instance" in body["message"]


async def test_just_started_gateway_waits_for_the_first_instance(
    start_gateway: StartGateway, fakes: Fakes
) -> None:
    """In its start-up grace a gateway holds a request until an instance registers."""
    gateway = await start_gateway(startup_grace_s=5.0)
    async with gateway.client() as client:
        pending = asyncio.ensure_future(client.post("/api/v1/token/transfer", json=TRANSFER))
        await asyncio.sleep(0.5)
        assert not pending.done()
        await gateway.register(fakes.write_a)
        answer = await pending
    assert answer.status_code == 200
    assert answer.json()["data"]["instance"] == fakes.write_a.instance_id


async def test_every_breaker_open_is_a_503_with_the_wait(
    start_gateway: StartGateway, dead_url: str
) -> None:
    """Once the only instance's breaker is open, 503 says when to come back."""
    gateway = await start_gateway(breaker_failure_threshold=1, breaker_open_s=30)
    await gateway.register_url("read-dead", "read", dead_url)
    async with gateway.client() as client:
        first = await client.get("/api/v1/conn/blockNum")
        second = await client.get("/api/v1/conn/blockNum")
    assert first.status_code == 502
    assert second.status_code == 503
    assert 29 <= int(second.headers["retry-after"]) <= 30
    assert "every read service instance is failing" in second.json()["message"]


async def test_service_envelope_and_status_pass_through(wired: Gateway, fakes: Fakes) -> None:
    """A service's own error envelope (a reverted write, 409) reaches the client as is."""
    fakes.write_a.mode = fakes.write_b.mode = "conflict"
    async with wired.client() as client:
        answer = await client.post("/api/v1/token/transfer", json=TRANSFER)
    assert answer.status_code == 409
    assert answer.json()["error"]["code"] == "reverted"
    assert wired.instance("write-a").breaker.failures == 0


async def test_task_status_is_proxied_with_its_status(wired: Gateway) -> None:
    """GET /api/v1/tasks/{id} answers the service's 202 (pending) and 404 (unknown)."""
    async with wired.client() as client:
        pending = await client.get(f"/api/v1/tasks/{TASK}")
        unknown = await client.get(f"/api/v1/tasks/{UNKNOWN_TASK}")
    assert pending.status_code == 202
    assert pending.json()["task_id"] == TASK
    assert unknown.status_code == 404


async def test_malformed_task_id_is_422_and_not_forwarded(wired: Gateway, fakes: Fakes) -> None:
    """A task id that is not 32 hex digits is refused by the gateway."""
    async with wired.client() as client:
        answer = await client.get("/api/v1/tasks/not-a-task")
    assert answer.status_code == 422
    assert answer.json()["error"]["field"] == "task_id"
    assert fakes.seen_total() == 0


async def test_task_status_falls_back_to_a_write_instance(gateway: Gateway, fakes: Fakes) -> None:
    """Without read instances, a write instance answers a task's status."""
    await gateway.register(fakes.write_a)
    async with gateway.client() as client:
        answer = await client.get(f"/api/v1/tasks/{TASK}")
    assert answer.status_code == 202
    assert answer.json()["data"]["instance"] == "write-a"


async def test_request_id_is_made_forwarded_and_echoed(wired: Gateway, fakes: Fakes) -> None:
    """Without X-Request-ID the gateway makes one, sends it upstream and echoes it."""
    async with wired.client() as client:
        answer = await client.get("/api/v1/conn/blockNum")
    request_id = answer.headers[REQUEST_ID_HEADER]
    assert len(request_id) == 32
    seen = next(s for f in (fakes.read_a, fakes.read_b) for s in f.seen)
    assert seen.headers[REQUEST_ID_HEADER.lower()] == request_id
    assert answer.json()["request_id"] == request_id


async def test_client_request_id_is_kept(wired: Gateway, fakes: Fakes) -> None:
    """A client's X-Request-ID goes to the service and comes back unchanged."""
    async with wired.client() as client:
        answer = await client.post(
            "/api/v1/token/transfer", json=TRANSFER, headers={REQUEST_ID_HEADER: "order-42"}
        )
    assert answer.headers[REQUEST_ID_HEADER] == "order-42"
    seen = next(s for f in (fakes.write_a, fakes.write_b) for s in f.seen)
    assert seen.headers[REQUEST_ID_HEADER.lower()] == "order-42"


async def test_unsafe_request_id_is_replaced(wired: Gateway) -> None:
    """A request id with spaces or control characters is replaced by a fresh one."""
    async with wired.client() as client:
        answer = await client.get("/api/v1/conn/blockNum", headers={REQUEST_ID_HEADER: "x y\tz"})
    assert answer.headers[REQUEST_ID_HEADER] != "x y\tz"
    assert len(answer.headers[REQUEST_ID_HEADER]) == 32


async def test_api_key_is_not_forwarded(wired: Gateway, fakes: Fakes) -> None:
    """Services never see the client's API key."""
    async with wired.client() as client:
        await client.get("/api/v1/conn/blockNum")
    seen = next(s for f in (fakes.read_a, fakes.read_b) for s in f.seen)
    assert "x-api-key" not in seen.headers


async def test_the_callers_key_id_and_role_are_forwarded(wired: Gateway, fakes: Fakes) -> None:
    """Each forwarded request names the key id and role the gateway verified, for the
    provider's account ownership: a user key on a write, an admin key on a read."""
    async with wired.client("user") as user, wired.client("admin") as admin:
        await user.post("/api/v1/token/transfer", json=TRANSFER)
        await admin.get("/api/v1/admin/list")
    wrote = next(s for f in (fakes.write_a, fakes.write_b) for s in f.seen)
    read = next(s for f in (fakes.read_a, fakes.read_b) for s in f.seen)
    user_key = wired.state.keyring.verify(wired.user_key)
    admin_key = wired.state.keyring.verify(wired.admin_key)
    assert user_key is not None
    assert admin_key is not None
    assert wrote.headers[CALLER_HEADER.lower()] == f"user:{user_key.key_id}"
    assert read.headers[CALLER_HEADER.lower()] == f"admin:{admin_key.key_id}"


async def test_a_clients_own_caller_header_is_never_forwarded(wired: Gateway, fakes: Fakes) -> None:
    """A user key that sends the caller header naming an admin is forwarded as itself."""
    async with wired.client("user") as client:
        await client.post(
            "/api/v1/token/transfer", json=TRANSFER, headers={CALLER_HEADER: "admin:0123"}
        )
    seen = next(s for f in (fakes.write_a, fakes.write_b) for s in f.seen)
    assert seen.headers[CALLER_HEADER.lower()].startswith("user:")


async def test_invalid_query_is_422_naming_the_field_and_nothing_is_forwarded(
    wired: Gateway, fakes: Fakes
) -> None:
    """A bad address is refused by the gateway with the field named; no service sees it."""
    async with wired.client() as client:
        answer = await client.get("/api/v1/token/balance", params={"address": "0x1234"})
    assert answer.status_code == 422
    body = answer.json()
    assert body["error"]["code"] == "invalid_params"
    assert body["error"]["field"] == "address"
    assert "20 bytes" in body["error"]["reason"]
    assert fakes.seen_total() == 0


async def test_invalid_body_is_422_naming_the_field_and_nothing_is_forwarded(
    wired: Gateway, fakes: Fakes
) -> None:
    """A negative value in a write is refused with the field named; no service sees it."""
    async with wired.client() as client:
        answer = await client.post("/api/v1/token/transfer", json={**TRANSFER, "value": -1})
    assert answer.status_code == 422
    assert answer.json()["error"]["field"] == "value"
    assert fakes.seen_total() == 0


async def test_missing_field_is_422_naming_it(wired: Gateway, fakes: Fakes) -> None:
    """A write without a required field names that field (as the client spells it)."""
    async with wired.client() as client:
        answer = await client.post("/api/v1/token/transfer", json={"to": ADDRESS, "value": 1})
    assert answer.status_code == 422
    assert answer.json()["error"]["field"] == "from"
    assert fakes.seen_total() == 0


async def test_body_that_is_not_json_is_422(wired: Gateway, fakes: Fakes) -> None:
    """A write body that does not parse is refused as invalid input, nothing forwarded."""
    async with wired.client() as client:
        answer = await client.post(
            "/api/v1/token/transfer",
            content=b"{not json",
            headers={"content-type": "application/json"},
        )
    assert answer.status_code == 422
    assert answer.json()["error"]["field"] == "body"
    assert fakes.seen_total() == 0
