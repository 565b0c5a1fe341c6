"""Task classes, the task record, and the dispatch order of one round (lbh-spec.md section 5)."""

from __future__ import annotations

import math
from collections.abc import Sequence
from dataclasses import dataclass
from enum import StrEnum


class TaskClass(StrEnum):
    """The thesis's four task classes; the value is the class's short name."""

    RT = "RT"
    """Read task: balance, block number, transaction by hash, receipt, account list."""
    DT = "DT"
    """Deploy task: deploy a contract."""
    MAT = "MAT"
    """Manage-account task: create or unlock an account."""
    MCT = "MCT"
    """Manage-contract task: token operations, publish, buy, send a transaction."""

    @property
    def is_write(self) -> bool:
        """Every class but RT changes the chain."""
        return self is not TaskClass.RT


# Writes by class: rarer classes first (section 5, step 2).
_WRITE_CLASSES = (TaskClass.DT, TaskClass.MAT, TaskClass.MCT)


@dataclass(frozen=True, slots=True)
class Task:
    """One unit of work waiting for a node.

    `account` ties writes of one account together so their order is kept; reads ignore it.
    `enqueued_at` orders tasks oldest first; ties keep the input order. A string class name
    ("RT", "DT", "MAT", "MCT") is accepted and turned into its TaskClass.
    """

    task_id: str
    cls: TaskClass
    account: str | None = None
    enqueued_at: float = 0.0

    def __post_init__(self) -> None:
        # TaskClass(...) raises ValueError naming the bad value, which is the message we want.
        object.__setattr__(self, "cls", TaskClass(self.cls))
        enqueued_at = float(self.enqueued_at)
        if not math.isfinite(enqueued_at):
            raise ValueError(f"Task {self.task_id!r}: enqueued_at is not finite: {enqueued_at}")
        object.__setattr__(self, "enqueued_at", enqueued_at)


def dispatch_order(tasks: Sequence[Task]) -> list[int]:
    """Indices of `tasks` in the order a round dispatches them.

    Reads first, oldest first; then writes by class (DT, MAT, MCT), oldest first within a
    class, except that no write overtakes an older write of the same account. Among the writes
    whose older same-account writes are already placed, the one of best (class, age, position)
    goes next; that greedy rule is what the spec's worked example shows.

    Cost: one stable sort by age (linear on input that is already oldest first, as a queue's
    is) and linear passes.
    """
    ages = [t.enqueued_at for t in tasks]
    by_age = sorted(range(len(tasks)), key=ages.__getitem__)  # stable: ties keep input order
    reads: list[int] = []
    by_class: dict[TaskClass, list[int]] = {cls: [] for cls in _WRITE_CLASSES}
    predecessor: dict[int, int] = {}  # write -> the account's previous write, by age
    last_of_account: dict[str, int] = {}
    for i in by_age:
        task = tasks[i]
        if task.cls is TaskClass.RT:
            reads.append(i)
            continue
        by_class[task.cls].append(i)
        if task.account is not None:
            if task.account in last_of_account:
                predecessor[i] = last_of_account[task.account]
            last_of_account[task.account] = i
    if not predecessor:  # no account has two writes: class order cannot break account order
        return reads + [i for cls in _WRITE_CLASSES for i in by_class[cls]]
    return reads + _keep_account_order(len(tasks), by_class, predecessor)


def _keep_account_order(
    count: int, by_class: dict[TaskClass, list[int]], predecessor: dict[int, int]
) -> list[int]:
    """Writes by class then age, each account's writes kept in age order.

    Scan the writes in (class, age) order. A write whose older same-account write has not been
    placed waits; when that predecessor is placed, the waiting write is the best write still
    available (everything ranked before it has been placed or is waiting too), so it goes right
    after it, and so on down the account's chain.
    """
    placed = [False] * count
    waiting: dict[int, int] = {}  # predecessor -> the write waiting for it
    order: list[int] = []
    for cls in _WRITE_CLASSES:
        for i in by_class[cls]:
            before = predecessor.get(i)
            if before is not None and not placed[before]:
                waiting[before] = i
                continue
            order.append(i)
            placed[i] = True
            follower = waiting.pop(i, None)
            while follower is not None:
                order.append(follower)
                placed[follower] = True
                follower = waiting.pop(follower, None)
    return order
