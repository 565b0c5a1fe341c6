"""Faults under a steady mixed load through the gateway of a real stack (issue #8).

Each scenario: a few concurrent clients read and write through the gateway; the fault is
injected; the broken part is brought back; the load runs on; then every accepted task must
have its result, every successful write must be on chain exactly once, reads must not have
failed, and writes must have succeeded or been refused with a clear retriable error.
"""

from __future__ import annotations

import asyncio

import pytest

from devstack.processes import Supervisor
from devstack.sandbox import PROVIDER_READY, kill_node, wait_for_log
from ethgw_wire.node_reports import Lifecycle
from geth_cluster.snapshot import DownReason
from tests.faults.scenario import Faults, assert_clean

pytestmark = pytest.mark.slow

DEAD_S = 3.0  # how long a killed part stays dead, under load, before it is started again
LAG_S = 6.0  # how long the cut-off node stays behind once the manager calls it lagging
PROPAGATION_S = 1.0  # from the manager's verdict to the providers' view, through Kafka
ROUTED_AGAIN_S = 45.0  # a caught-up node must take a task within this, under the load
RESTARTED_WITHIN_S = 30.0  # the supervisor's first backoff is 1 s; a start takes a few


async def test_baseline_without_a_fault(faults: Faults) -> None:
    """With nothing broken, the load sees no failure and every write lands once."""

    async def nothing() -> None:
        return None

    assert_clean(await faults.exercise("none (baseline)", nothing))


async def test_killed_geth_node(faults: Faults) -> None:
    """kill -9 of a service node: its tasks go to the others; it is routed again once back."""
    cluster = faults.sandbox.cluster

    async def inject() -> None:
        kill_node(cluster, "node-2")

    async def restore() -> None:
        await asyncio.sleep(DEAD_S)
        await cluster.stop_node("node-2")  # reaps the dead process
        await cluster.start_node("node-2")

    row = await faults.exercise(
        "kill -9 Geth node-2", inject, restore, notes=[f"restarted after {DEAD_S:.0f} s"]
    )
    assert_clean(row)


async def test_killed_provider(faults: Faults) -> None:
    """kill -9 of the provider holding the writes: the other takes over, nothing lost or
    doubled, and user accounts it unlocked before the kill still sign (no account_locked)."""
    sandbox = faults.sandbox
    owner_name = await faults.writes_provider()
    owner = next(p for p in sandbox.providers if p.name == owner_name)
    users = await faults.user_accounts(owner_name)

    async def inject() -> None:
        await owner.kill()

    async def restore() -> None:
        await asyncio.sleep(DEAD_S)
        await sandbox.start_service(owner, PROVIDER_READY)

    row = await faults.exercise(
        f"kill -9 provider (the writes' owner, {owner_name}), user accounts writing",
        inject,
        restore,
        notes=[f"restarted after {DEAD_S:.0f} s"],
        users=users,
    )
    # The killed provider's unlocks died with it: every user write signed after the kill
    # came from a grant, on the survivor or on the restarted provider. The restarted one
    # keeps its id, so its writes are not counted in `by_grant`, which may then be 0; a
    # write it could not sign would be account_locked, which assert_clean refuses.
    assert_clean(row)


async def test_rebalance_between_two_providers(faults: Faults) -> None:
    """One of the two providers leaves the group (SIGTERM) and joins again: the user
    accounts it unlocked move to the other provider and back, and every write of theirs
    signs (no account_locked), nothing lost or doubled."""
    sandbox = faults.sandbox
    owner_name = await faults.writes_provider()
    owner = next(p for p in sandbox.providers if p.name == owner_name)
    users = await faults.user_accounts(owner_name)

    async def inject() -> None:
        await owner.stop()

    async def restore() -> None:
        await asyncio.sleep(DEAD_S)
        await sandbox.start_service(owner, PROVIDER_READY)

    row = await faults.exercise(
        f"rebalance: {owner_name} leaves and rejoins, user accounts writing",
        inject,
        restore,
        notes=[f"stopped (SIGTERM), started again after {DEAD_S:.0f} s"],
        users=users,
    )
    assert_clean(row)
    assert row.by_grant > 0, "no user write ran on a provider that had not unlocked it"


async def test_supervised_restarts(faults: Faults) -> None:
    """kill -9 of the writes' provider, read-1 and write-1 with nobody starting them by hand:
    the supervisor of `ethgw up` starts each again once, and nothing is lost or doubled."""
    sandbox = faults.sandbox
    owner_name = await faults.writes_provider()
    owner = next(p for p in sandbox.providers if p.name == owner_name)
    victims = [owner, sandbox.readers[0], sandbox.writers[0]]
    supervisor = Supervisor(victims)  # the restart policy `ethgw up` uses

    async def inject() -> None:
        await asyncio.gather(*(v.kill() for v in victims))

    async def restore() -> None:
        async with asyncio.timeout(RESTARTED_WITHIN_S):
            # The supervisor has no event for "started again".
            while not all(supervisor.restarts(v.name) and v.alive for v in victims):  # noqa: ASYNC110
                await asyncio.sleep(0.2)
        await asyncio.gather(*(v.wait_healthy() for v in victims))
        await wait_for_log(owner, PROVIDER_READY)

    supervisor.start()
    try:
        row = await faults.exercise(
            f"kill -9 {owner_name}, read-1 and write-1; the supervisor starts them again",
            inject,
            restore,
        )
    finally:
        await supervisor.stop()
    restarts = {v.name: supervisor.restarts(v.name) for v in victims}
    row.notes.append("restarts " + ", ".join(f"{n}: {k}" for n, k in restarts.items()))
    assert_clean(row)
    assert set(restarts.values()) == {1}


async def test_restarted_kafka_broker(faults: Faults) -> None:
    """The broker stopped and started again: every service reconnects, nothing is lost."""
    row = await faults.exercise("restart the Kafka broker", faults.sandbox.restart_kafka)
    assert_clean(row)


async def test_restarted_gateway(faults: Faults) -> None:
    """The gateway restarted: the instances register again, clients reconnect."""
    sandbox = faults.sandbox

    async def inject() -> None:
        await sandbox.gateway.stop()
        await sandbox.start_service(sandbox.gateway)

    row = await faults.exercise(
        "restart the gateway (SIGTERM, start)",
        inject,
        notes=["clients retry a refused connection (nothing sent)"],
    )
    assert_clean(row)


async def test_lagging_node_takes_no_task_until_it_catches_up(faults: Faults) -> None:
    """A node cut off from its peers falls behind: DOWN for routing while it lags, no task
    reaches it, and it is routed to again once it has caught up (lbh-spec.md section 1)."""
    sandbox = faults.sandbox
    cluster = sandbox.cluster
    spec = cluster.spec("node-3")
    watch = faults.watch_node("node-3")
    routed_again: list[float | None] = []

    async def inject() -> None:
        # --maxpeers 0: geth refuses every peer, the static ones included, so the node
        # answers RPC at its old head while the chain moves on.
        await cluster.stop_node("node-3")
        await cluster.runtime.start(spec, [*cluster.geth_args(spec), "--maxpeers", "0"])
        await watch.until(lambda n: n.down_reason is DownReason.LAG, 60.0)
        await asyncio.sleep(LAG_S)

    async def restore() -> None:
        await cluster.stop_node("node-3")
        await cluster.start_node("node-3")  # waits until it is back within max_lag
        back_at = await watch.until(lambda n: n.lifecycle is Lifecycle.UP, 60.0)
        first = await faults.routed_to("node-3", since=back_at, timeout_s=ROUTED_AGAIN_S)
        routed_again.append(None if first is None else first - back_at)

    try:
        row = await faults.exercise(
            "node-3 cut off from its peers (lags)",
            inject,
            restore,
            notes=[f"kept lagging {LAG_S:.0f} s after the manager said so"],
        )
    finally:
        watch.stop()
    lagging = watch.spans(lambda n: n.down_reason is DownReason.LAG)
    # The providers hear of the manager's verdict through Kafka: allow them a moment.
    routed_while_lagging = [
        task
        for start, end in lagging
        for task in faults.dispatched_to("node-3", start + PROPAGATION_S, end)
    ]
    again = routed_again[0] if routed_again else None
    row.notes.append(
        f"tasks to node-3 while lagging: {len(routed_while_lagging)}; routed again "
        + ("never" if again is None else f"{again:.1f} s after UP")
    )
    assert lagging, "the manager never called node-3 lagging"
    assert_clean(row)
    assert routed_while_lagging == []
    assert again is not None, "node-3 took no task after it caught up"
