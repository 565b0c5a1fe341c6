"""The registry: TTL, round robin, breakers, and the registration model."""

from __future__ import annotations

import pytest
from pydantic import ValidationError

from ethgw_wire.registration import InstanceRegistration
from gateway.breaker import CircuitBreaker
from gateway.instance_registry import Registry


def _registry(ttl_s: float = 10.0) -> Registry:
    return Registry(ttl_s, lambda: CircuitBreaker(failure_threshold=1, open_s=5))


def _add(registry: Registry, instance_id: str, kind: str = "read", now: float = 0.0) -> None:
    registration = InstanceRegistration.model_validate(
        {"instance_id": instance_id, "kind": kind, "url": f"http://127.0.0.1:1/{instance_id}"}
    )
    registry.register(registration, now)


def _picks(registry: Registry, kind: str, count: int, now: float = 0.0) -> list[str | None]:
    chosen = [registry.choose(kind, now) for _ in range(count)]  # type: ignore[arg-type]
    return [i.instance_id if i else None for i in chosen]


def test_round_robin_among_instances_of_a_kind() -> None:
    """Consecutive choices cycle through the instances of the kind."""
    registry = _registry()
    for name in ("a", "b", "c"):
        _add(registry, name)
    assert _picks(registry, "read", 6) == ["a", "b", "c", "a", "b", "c"]


def test_kinds_are_separate() -> None:
    """A write is never given a read instance, and the reverse."""
    registry = _registry()
    _add(registry, "r", "read")
    _add(registry, "w", "write")
    assert _picks(registry, "write", 2) == ["w", "w"]
    assert _picks(registry, "read", 2) == ["r", "r"]


def test_expired_instance_is_not_chosen() -> None:
    """An instance silent for longer than the TTL is skipped even before pruning."""
    registry = _registry(ttl_s=10)
    _add(registry, "old", now=0.0)
    _add(registry, "new", now=5.0)
    assert _picks(registry, "read", 3, now=12.0) == ["new", "new", "new"]


def test_expire_drops_silent_instances() -> None:
    """expire() removes exactly the instances past their TTL and returns them."""
    registry = _registry(ttl_s=10)
    _add(registry, "old", now=0.0)
    _add(registry, "new", now=5.0)
    gone = registry.expire(12.0)
    assert [i.instance_id for i in gone] == ["old"]
    assert [i.instance_id for i in registry.instances()] == ["new"]


def test_a_kind_whose_every_instance_fell_silent_is_kept() -> None:
    """expire() keeps the instances of a kind that has no live one left (fail static)."""
    registry = _registry(ttl_s=10)
    _add(registry, "a", now=0.0)
    _add(registry, "b", now=1.0)
    assert registry.expire(12.0) == []
    assert registry.failing_static("read", 12.0)


def test_failing_static_routes_to_the_silent_instances() -> None:
    """With every instance of a kind silent, choose() still goes round them."""
    registry = _registry(ttl_s=10)
    _add(registry, "a", now=0.0)
    _add(registry, "b", now=1.0)
    assert _picks(registry, "read", 2, now=12.0) == ["a", "b"]


def test_silent_instances_do_not_count_as_healthy() -> None:
    """An instance routed to only while failing static is not healthy (readiness says so)."""
    registry = _registry(ttl_s=10)
    _add(registry, "a", now=0.0)
    assert registry.healthy("read", 12.0) == []


def test_heartbeat_extends_the_ttl() -> None:
    """A heartbeat within the TTL keeps the instance live for another TTL."""
    registry = _registry(ttl_s=10)
    _add(registry, "a", now=0.0)
    assert registry.heartbeat("a", 8.0) is not None
    assert _picks(registry, "read", 1, now=15.0) == ["a"]


def test_heartbeat_of_unknown_or_expired_instance_asks_to_register() -> None:
    """A heartbeat for an instance the registry does not hold (or that expired) is None."""
    registry = _registry(ttl_s=10)
    assert registry.heartbeat("ghost", 0.0) is None
    _add(registry, "a", now=0.0)
    assert registry.heartbeat("a", 11.0) is None
    assert registry.instances() == []


def test_open_breaker_is_skipped_and_none_when_all_open() -> None:
    """Instances with an open breaker are not chosen; with all open, nothing is."""
    registry = _registry()
    _add(registry, "a")
    _add(registry, "b")
    registry.get("a").breaker.record_failure(0.0)  # type: ignore[union-attr]
    assert _picks(registry, "read", 3, now=1.0) == ["b", "b", "b"]
    registry.get("b").breaker.record_failure(1.0)  # type: ignore[union-attr]
    assert registry.choose("read", 2.0) is None
    assert registry.retry_after("read", 2.0) == pytest.approx(3.0)


def test_retry_after_is_none_without_instances() -> None:
    """With nothing registered there is no time after which a call would succeed."""
    assert _registry().retry_after("write", 0.0) is None


def test_choose_excludes_the_instances_already_tried() -> None:
    """A retry never goes back to the instance that just failed."""
    registry = _registry()
    _add(registry, "a")
    _add(registry, "b")
    for _ in range(3):
        chosen = registry.choose("read", 0.0, exclude={"a"})
        assert chosen is not None
        assert chosen.instance_id == "b"
    assert registry.choose("read", 0.0, exclude={"a", "b"}) is None


def test_registration_starts_with_a_closed_breaker() -> None:
    """A re-registration (a restarted process) is not held back by its old breaker."""
    registry = _registry()
    _add(registry, "a")
    registry.get("a").breaker.record_failure(0.0)  # type: ignore[union-attr]
    _add(registry, "a", now=1.0)
    assert _picks(registry, "read", 1, now=1.0) == ["a"]


def test_deregister_removes() -> None:
    """A deregistered instance is gone at once."""
    registry = _registry()
    _add(registry, "a")
    assert registry.deregister("a") is not None
    assert registry.choose("read", 0.0) is None
    assert registry.deregister("a") is None


@pytest.mark.parametrize(
    ("field", "value"),
    [
        ("url", "ftp://127.0.0.1:1"),
        ("url", "http://127.0.0.1:1/?x=1"),
        ("url", "not a url"),
        ("instance_id", "bad id/with slash"),
        ("instance_id", ""),
        ("kind", "other"),
    ],
)
def test_registration_refuses_bad_fields(field: str, value: str) -> None:
    """Registrations with a non-http URL, a URL with a query, a bad id or kind are refused."""
    data = {"instance_id": "read-1", "kind": "read", "url": "http://127.0.0.1:8101", field: value}
    with pytest.raises(ValidationError) as error:
        InstanceRegistration.model_validate(data)
    assert error.value.errors()[0]["loc"] == (field,)


def test_registration_url_loses_its_trailing_slash() -> None:
    """The base URL is stored without a trailing slash, so paths never double it."""
    registration = InstanceRegistration(
        instance_id="read-1", kind="read", url="http://127.0.0.1:8101/"
    )
    assert registration.url == "http://127.0.0.1:8101"
