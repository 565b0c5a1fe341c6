"""The simulated workload: the thesis's table 5.1 mix as a seeded arrival trace."""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np

from balancer.tasks import Task, TaskClass


@dataclass(frozen=True, slots=True)
class Kind:
    """One operation of table 5.1 and what it costs a node.

    work_s: CPU seconds on an unloaded node of speed 1.
    memory_mb: memory the call holds while in flight.
    leak_mb: memory the node keeps after the call (caches, txpool, keystore): the creep that a
        restart clears.
    """

    name: str
    cls: TaskClass
    share: float
    work_s: float
    memory_mb: float
    leak_mb: float


# Table 5.1 (shares sum to 1). Costs are assumptions of this model, not measurements: reads are
# cheap state lookups; create and unlock run scrypt (CPU- and memory-heavy); send transaction
# signs nothing (the provider signs) but validates and pools the transaction; deploy executes
# a constructor.
KINDS: tuple[Kind, ...] = (
    Kind("ether_balance", TaskClass.RT, 0.20, 0.003, 1.0, 0.002),
    Kind("coinbase", TaskClass.RT, 0.05, 0.001, 1.0, 0.0),
    Kind("node_accounts", TaskClass.RT, 0.05, 0.002, 1.0, 0.0),
    Kind("block_number", TaskClass.RT, 0.10, 0.001, 1.0, 0.0),
    Kind("list_accounts", TaskClass.RT, 0.05, 0.002, 1.0, 0.0),
    Kind("tx_hash", TaskClass.RT, 0.05, 0.002, 1.0, 0.0),
    Kind("tx_by_hash", TaskClass.RT, 0.05, 0.003, 1.0, 0.002),
    Kind("create_account", TaskClass.MAT, 0.05, 0.060, 32.0, 0.3),
    Kind("unlock_account", TaskClass.MAT, 0.05, 0.050, 32.0, 0.2),
    Kind("send_transaction", TaskClass.MCT, 0.30, 0.015, 4.0, 0.35),
    Kind("deploy_contract", TaskClass.DT, 0.05, 0.040, 16.0, 0.8),
)

TASK_MEMORY_MB: dict[TaskClass, float] = {
    cls: max(k.memory_mb for k in KINDS if k.cls is cls) for cls in TaskClass
}
"""The scheduler's demand table: each class at its heaviest kind's memory."""


@dataclass(frozen=True, slots=True)
class Arrival:
    """A task of the trace and the kind of work it is."""

    task: Task
    kind: Kind


def make_trace(
    rng: np.random.Generator,
    *,
    rate: float,
    duration_s: float,
    burst: int = 0,
    burst_at_s: float = 0.0,
    accounts: int = 50,
) -> list[Arrival]:
    """Poisson arrivals at `rate` per second over `duration_s`, in the table 5.1 mix, plus
    `burst` tasks arriving together at `burst_at_s` (the thesis's concurrent load).

    Writes belong to one of `accounts` accounts, so per-account order matters; reads have none.
    """
    gaps = rng.exponential(1.0 / rate, size=int(rate * duration_s * 1.2) + 10)
    times = np.cumsum(gaps)
    times = times[times < duration_s]
    times = np.sort(np.concatenate([times, np.full(burst, burst_at_s)]), kind="stable")
    shares = np.array([k.share for k in KINDS])
    kinds = rng.choice(len(KINDS), size=len(times), p=shares / shares.sum())
    owners = rng.integers(0, accounts, size=len(times))
    trace = []
    for i, (at, k, owner) in enumerate(
        zip(times.tolist(), kinds.tolist(), owners.tolist(), strict=True)
    ):
        kind = KINDS[k]
        account = None if kind.cls is TaskClass.RT else f"acct-{owner}"
        trace.append(Arrival(Task(f"t{i}", kind.cls, account, at), kind))
    return trace
