"""The platform events stream, GET /api/v1/events, through the real gateway, services,
Kafka, provider and chain: live events after a subscription, resumption without a gap or a
duplicate, what each key sees, bad resume points, and the bound per key.

One market run (module fixture) happens while three streams listen: the admin key's,
alice's (a user key with an account of her own) and bob's (another user key).
"""

from __future__ import annotations

import asyncio
import contextlib
import json
import secrets
from collections.abc import AsyncIterator, Callable
from dataclasses import dataclass, field
from typing import Any

import httpx
import pytest
import pytest_asyncio

from tests.pipeline_fixtures import Stack

# The market run (module fixture) is a dozen mined writes: generous on a shared machine.
pytestmark = [pytest.mark.slow, pytest.mark.timeout(600)]

PASSWORD = "events-pass-1"
WAIT_S = 120.0  # a shared machine: blocks are 1 s, but tasks can queue


@dataclass(frozen=True)
class Message:
    """One SSE message: its id, its event (the kind) and its data."""

    id: str
    event: str
    data: dict[str, Any]


async def messages(response: httpx.Response) -> AsyncIterator[Message]:
    """The SSE messages of a streamed answer (comments and `retry:` skipped)."""
    fields: dict[str, str] = {}
    async for line in response.aiter_lines():
        if line == "":
            if "data" in fields:
                yield Message(fields.get("id", ""), fields["event"], json.loads(fields["data"]))
            fields = {}
        elif not line.startswith(":"):
            name, _, value = line.partition(":")
            fields[name] = value.removeprefix(" ")


@dataclass
class Listener:
    """A stream read in the background: every message it got, in order."""

    client: httpx.AsyncClient
    params: dict[str, Any] = field(default_factory=dict)
    headers: dict[str, str] = field(default_factory=dict)
    got: list[Message] = field(default_factory=list)
    _opened: asyncio.Event = field(default_factory=asyncio.Event)
    _arrived: asyncio.Event = field(default_factory=asyncio.Event)
    _task: asyncio.Task[None] | None = None

    async def start(self) -> Listener:
        """Open the stream; back once the gateway answered 200 (it subscribed)."""
        self._task = task = asyncio.create_task(self._read())
        opened = asyncio.create_task(self._opened.wait())
        await asyncio.wait([task, opened], timeout=WAIT_S, return_when=asyncio.FIRST_COMPLETED)
        opened.cancel()
        if task.done():
            task.result()  # refused: raises why
        assert self._opened.is_set(), "the stream did not open"
        return self

    async def _read(self) -> None:
        request = self.client.stream("GET", "/events", params=self.params, headers=self.headers)
        async with request as response:
            assert response.status_code == 200, await response.aread()
            assert response.headers["content-type"].startswith("text/event-stream")
            self._opened.set()
            async for message in messages(response):
                self.got.append(message)
                self._arrived.set()

    async def until(self, found: Callable[[list[Message]], bool]) -> list[Message]:
        """Every message so far, once `found` holds of them (fails after WAIT_S)."""
        async with asyncio.timeout(WAIT_S):
            while not found(self.got):
                if self._task is not None and self._task.done():
                    self._task.result()  # the stream ended: say why
                self._arrived.clear()
                with contextlib.suppress(TimeoutError):
                    async with asyncio.timeout(1.0):
                        await self._arrived.wait()
        return list(self.got)

    async def stop(self) -> None:
        if self._task is not None:
            self._task.cancel()
            with contextlib.suppress(asyncio.CancelledError):
                await self._task


def has(kind: str, **values: Any) -> Callable[[list[Message]], bool]:
    def found(got: list[Message]) -> bool:
        return any(m.event == kind and values.items() <= m.data.items() for m in got)

    return found


def one(got: list[Message], kind: str, **values: Any) -> Message:
    [message] = [m for m in got if m.event == kind and values.items() <= m.data.items()]
    return message


async def ok(response: httpx.Response) -> Any:
    assert response.status_code == 200, response.text
    return response.json()["data"]


async def new_account(client: httpx.AsyncClient) -> str:
    address = str(
        (await ok(await client.post("/accounts", json={"password": PASSWORD})))["address"]
    )
    await ok(await client.post(f"/accounts/{address}/unlock", json={"password": PASSWORD}))
    return address


def client_of(stack: Stack, key: str) -> httpx.AsyncClient:
    timeout = httpx.Timeout(60, read=None)  # a stream may be idle between events
    return httpx.AsyncClient(base_url=stack.api, timeout=timeout, headers={"X-API-Key": key})


@dataclass
class MarketRun:
    """What happened while the three streams listened, and what each got."""

    publisher: str
    buyer: str
    alices: str  # alice's own account
    project_id: int
    purchase_id: int
    admin: list[Message]
    alice: list[Message]
    bob: list[Message]


@pytest_asyncio.fixture(scope="module", loop_scope="session")
async def clients(stack: Stack) -> AsyncIterator[dict[str, httpx.AsyncClient]]:
    """Clients of the admin key and of two new user keys, alice and bob."""
    keys = {
        "admin": stack.admin_key,
        "alice": await stack.new_user_key(f"alice-events-{secrets.token_hex(3)}"),
        "bob": await stack.new_user_key(f"bob-events-{secrets.token_hex(3)}"),
    }
    opened = {name: client_of(stack, key) for name, key in keys.items()}
    yield opened
    for client in opened.values():
        await client.aclose()


@pytest_asyncio.fixture(scope="module", loop_scope="session")
async def market_run(clients: dict[str, httpx.AsyncClient]) -> AsyncIterator[MarketRun]:
    """Streams of admin, alice and bob opened; then alice's account made and minted to, a
    project published and bought by admin accounts, and alice paying the buyer."""
    admin, alice = clients["admin"], clients["alice"]
    listeners = {name: Listener(client) for name, client in clients.items()}
    for listener in listeners.values():
        await listener.start()
    try:
        alices, publisher, buyer = await asyncio.gather(
            new_account(alice), new_account(admin), new_account(admin)
        )

        async def mint(address: str, value: int) -> None:
            body = {"address": address, "value": value, "waitReceipt": True}
            await ok(await admin.post("/token/add", json=body))

        await asyncio.gather(mint(buyer, 500), mint(alices, 50))
        published = await ok(
            await admin.post(
                "/token/publish",
                json={
                    "address": publisher,
                    "time": 1700000000,
                    "projectName": "Events Fund",
                    "projectHash": "0x" + secrets.token_hex(32),
                    "price": 20,
                    "waitReceipt": True,
                },
            )
        )
        project_id = published["project_id"]
        body = {"address": buyer, "time": 1700000100, "projectId": project_id}
        bought = await ok(await admin.post("/token", json={**body, "waitReceipt": True}))
        transfer = {"from": alices, "to": buyer, "value": 5, "waitReceipt": True}
        await ok(await alice.post("/token/transfer", json=transfer))
        last_transfer = has("transfer", **{"from": alices, "to": buyer})
        admin_got = await listeners["admin"].until(last_transfer)
        alice_got = await listeners["alice"].until(last_transfer)
        # Bob is to see no transfer of alice's: once he has the purchase, alice's transfer
        # (a block later) is given time to reach his stream too.
        await listeners["bob"].until(has("project_purchased", project_id=project_id))
        await asyncio.sleep(3)
        yield MarketRun(
            publisher,
            buyer,
            alices,
            project_id,
            bought["purchase_id"],
            admin_got,
            alice_got,
            list(listeners["bob"].got),
        )
    finally:
        for listener in listeners.values():
            await listener.stop()


async def test_a_subscriber_sees_a_project_published_and_bought_after_it_subscribed(
    market_run: MarketRun,
) -> None:
    """The admin key's live stream has the project published and the purchase, in order,
    with every detail (the buyer named)."""
    published = one(market_run.admin, "project_published", project_id=market_run.project_id)
    bought = one(market_run.admin, "project_purchased", project_id=market_run.project_id)
    assert published.data["publisher"] == market_run.publisher
    assert published.data["name"] == "Events Fund"
    assert bought.data["buyer"] == market_run.buyer
    assert bought.data["purchase_id"] == market_run.purchase_id
    assert bought.data["price"] == 20
    positions = [tuple(map(int, m.id.split("-"))) for m in market_run.admin]
    assert positions == sorted(set(positions)), "ids in chain order, none twice"
    assert published.id == f"{published.data['block_number']}-{published.data['log_index']}"


async def test_a_user_key_sees_its_own_events_and_the_public_ones(market_run: MarketRun) -> None:
    """Alice sees the mint to her account and her transfer, the project published, and the
    purchase as a fact (buyer null); not the mint to the buyer's account."""
    got = market_run.alice
    one(got, "mint", to=market_run.alices)
    one(got, "transfer", **{"from": market_run.alices, "to": market_run.buyer})
    one(got, "project_published", project_id=market_run.project_id)
    assert one(got, "project_purchased", project_id=market_run.project_id).data["buyer"] is None
    assert not [m for m in got if m.event == "mint" and m.data["to"] == market_run.buyer]


async def test_a_second_user_key_does_not_see_the_first_keys_transfers(
    market_run: MarketRun,
) -> None:
    """Bob's stream has the public events of the run but no mint, burn or transfer naming
    alice's account (nor any naming the admin's accounts)."""
    got = market_run.bob
    one(got, "project_published", project_id=market_run.project_id)
    private = [m for m in got if m.event in ("transfer", "mint", "burn")]
    assert private == []


async def test_resuming_with_last_event_id_gets_exactly_the_events_after_it(
    clients: dict[str, httpx.AsyncClient], market_run: MarketRun
) -> None:
    """A stream opened with Last-Event-ID = the project's id gets the events the live
    stream had after it, in the same order, none twice."""
    live = market_run.admin
    published = one(live, "project_published", project_id=market_run.project_id)
    after = [m.id for m in live[live.index(published) + 1 :]]
    resumed = Listener(clients["admin"], headers={"Last-Event-ID": published.id})
    await resumed.start()
    try:
        got = await resumed.until(lambda ms: any(m.id == after[-1] for m in ms))
    finally:
        await resumed.stop()
    ids = [m.id for m in got]
    assert ids[: len(after)] == after
    assert len(ids) == len(set(ids))


async def test_after_and_from_block_start_the_history_where_they_say(
    clients: dict[str, httpx.AsyncClient], market_run: MarketRun
) -> None:
    """`?after=<id>` starts after that event; `?from_block=` with the first event of its
    block; `?kinds=` keeps only the kinds named."""
    published = one(market_run.admin, "project_published", project_id=market_run.project_id)
    bought = one(market_run.admin, "project_purchased", project_id=market_run.project_id)
    block = published.data["block_number"]
    streams = [
        Listener(clients["admin"], {"after": published.id, "kinds": "project_purchased"}),
        Listener(clients["admin"], {"from_block": block, "kinds": "project_published"}),
    ]
    try:
        after_got = await (await streams[0].start()).until(lambda ms: bool(ms))
        from_got = await (await streams[1].start()).until(lambda ms: bool(ms))
    finally:
        for stream in streams:
            await stream.stop()
    assert after_got[0].id == bought.id
    assert from_got[0].id == published.id


@pytest.mark.parametrize(
    ("params", "headers", "field"),
    [
        ({"from_block": "-1"}, {}, "from_block"),
        ({"from_block": "ten"}, {}, "from_block"),
        ({"after": "12"}, {}, "after"),
        ({"after": "x-1"}, {}, "after"),
        ({"after": "1-0", "from_block": "1"}, {}, "after"),
        ({"kinds": "transfer,swap"}, {}, "kinds"),
        ({}, {"Last-Event-ID": "latest"}, "Last-Event-ID"),
    ],
)
async def test_a_bad_resume_point_is_refused_422_naming_the_field(
    clients: dict[str, httpx.AsyncClient],
    params: dict[str, str],
    headers: dict[str, str],
    field: str,
) -> None:
    """A bad from_block, after, kinds or Last-Event-ID: 422 invalid_params naming it."""
    response = await clients["bob"].get("/events", params=params, headers=headers)
    assert response.status_code == 422, response.text
    error = response.json()["error"]
    assert (error["code"], error["field"]) == ("invalid_params", field)


async def test_a_key_holds_a_bounded_number_of_streams(stack: Stack) -> None:
    """A key's fifth stream at once is refused 429 event_streams_limited; once one closes,
    the key opens another."""
    key = await stack.new_user_key(f"streams-{secrets.token_hex(3)}")
    async with client_of(stack, key) as client:
        streams = [await Listener(client).start() for _ in range(4)]
        try:
            refused = await client.get("/events")
            assert refused.status_code == 429, refused.text
            assert refused.json()["error"]["code"] == "event_streams_limited"
            await streams.pop().stop()
            async with asyncio.timeout(10):
                while True:
                    with contextlib.suppress(AssertionError):
                        streams.append(await Listener(client).start())
                        break
                    await asyncio.sleep(0.2)
        finally:
            for stream in streams:
                await stream.stop()


async def test_a_page_of_events_shows_a_user_key_what_its_stream_does(
    clients: dict[str, httpx.AsyncClient], market_run: MarketRun
) -> None:
    """GET /events/range over the run's blocks, as alice: her mint and transfer, the
    project, the purchase without its buyer; never the mint to the buyer (the provider
    applies the same rule as the stream)."""
    blocks = [m.data["block_number"] for m in market_run.admin]
    params = {"fromBlock": min(blocks), "toBlock": max(blocks)}
    page = await ok(await clients["alice"].get("/events/range", params=params))
    assert page["to_block"] == max(blocks)
    got = [Message(e["id"], e["kind"], e) for e in page["events"]]
    one(got, "mint", to=market_run.alices)
    one(got, "transfer", **{"from": market_run.alices, "to": market_run.buyer})
    assert one(got, "project_purchased", project_id=market_run.project_id).data["buyer"] is None
    assert not [m for m in got if m.event == "mint" and m.data["to"] == market_run.buyer]
    assert [m.id for m in got] == [m.id for m in market_run.alice if m.id in {g.id for g in got}]


@pytest.mark.parametrize(
    ("params", "field"),
    [
        ({"fromBlock": 10, "toBlock": 9}, "toBlock"),
        ({"fromBlock": 0, "toBlock": 2000}, "toBlock"),
        ({"fromBlock": -1}, "fromBlock"),
    ],
)
async def test_a_bad_page_range_is_refused_422_naming_the_bound(
    clients: dict[str, httpx.AsyncClient], params: dict[str, int], field: str
) -> None:
    """toBlock before fromBlock or more than 2,000 blocks on, or a negative fromBlock: 422
    invalid_params naming the bound, before any task."""
    response = await clients["bob"].get("/events/range", params=params)
    assert response.status_code == 422, response.text
    assert response.json()["error"]["field"] == field
