"""How the fault suite and the soak judge what the clients saw (pure logic, no servers)."""

from __future__ import annotations

from loadtests.soak import SoakVerdict
from loadtests.steady import Call, judge


def call(kind: str, status: int | None, *, retriable: bool = False, task: bool = False) -> Call:
    return Call(
        kind=kind,
        path="/x",
        started=0.0,
        seconds=0.1,
        status=status,
        retriable=retriable,
        code=None,
        task_id="ab" * 16 if task else None,
        tx_hash=None,
        reconnects=0,
    )


def test_a_read_answered_202_is_deferred_not_failed() -> None:
    """A read answered 202 with a task id counts as deferred, to be judged by its result."""
    verdict = judge([call("read", 202, task=True)])
    assert verdict.read_failures == 0
    assert verdict.read_deferred == ["ab" * 16]


def test_a_read_refused_as_retriable_is_still_a_failure() -> None:
    """Reads must not fail at all: a retriable 503 still counts against them."""
    assert judge([call("read", 503, retriable=True)]).read_failures == 1


def test_a_write_refused_as_retriable_is_not_a_failure() -> None:
    """A write may be refused with a clear retriable error; it is counted apart."""
    verdict = judge([call("write", 503, retriable=True)])
    assert verdict.write_failures == 0
    assert verdict.write_retriable == 1


def test_a_write_without_any_answer_is_a_failure() -> None:
    """A write whose connection broke after it was sent is a failure (it may have run)."""
    assert judge([call("write", None)]).write_failures == 1


def test_soak_fails_on_growth_over_the_bound() -> None:
    """A service whose RSS grew by more than the bound fails the soak."""
    verdict = SoakVerdict({"gateway": 100.0}, {"gateway": 111.0}, 10, 0, 5, 0, 0.10)
    assert verdict.grown == ["gateway"]
    assert not verdict.ok


def test_soak_fails_when_a_service_died() -> None:
    """A service gone by the end fails the soak even though nothing grew."""
    verdict = SoakVerdict({"gateway": 100.0, "read-1": 80.0}, {"gateway": 100.0}, 10, 0, 5, 0, 0.1)
    assert not verdict.ok
