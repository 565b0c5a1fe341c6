"""`ethgw up --port-base`: a second stack (the benchmark's) runs beside the first."""

from __future__ import annotations

import pytest

from devstack import stack


def test_port_base_moves_every_service(monkeypatch: pytest.MonkeyPatch) -> None:
    """The gateway takes the base; read, write and provider ports follow at their offsets."""
    monkeypatch.setenv("ETHGW_MANAGER_API_PORT", "9762")
    services = stack._services(stack.Shape(readers=1, writers=1, providers=1), 9100)
    urls = {s.name: s.health_url for s in services}
    assert urls == {
        "gateway": "http://127.0.0.1:9100/healthz",
        "provider-1": "http://127.0.0.1:9300/healthz",
        "read-1": "http://127.0.0.1:9200/healthz",
        "write-1": "http://127.0.0.1:9250/healthz",
    }
    assert services[0]._env["ETHGW_GATEWAY_MANAGER_URL"] == "http://127.0.0.1:9762"
    assert services[2]._env["ETHGW_READ_GATEWAY_URL"] == "http://127.0.0.1:9100"


def test_default_ports_are_unchanged() -> None:
    """Without --port-base the stack keeps the documented ports (8000, 8100, 8150, 8200)."""
    urls = [s.health_url for s in stack._services(stack.Shape(readers=1, writers=1))]
    assert urls == [
        "http://127.0.0.1:8000/healthz",
        "http://127.0.0.1:8200/healthz",
        "http://127.0.0.1:8100/healthz",
        "http://127.0.0.1:8150/healthz",
    ]


def test_up_gives_the_providers_the_managers_url(monkeypatch: pytest.MonkeyPatch) -> None:
    """`ethgw up`'s providers know the cluster manager, so recycle requests reach it."""
    monkeypatch.delenv("ETHGW_GATEWAY_MANAGER_URL", raising=False)
    monkeypatch.setenv("ETHGW_MANAGER_API_PORT", "9762")
    services = stack._services(stack.Shape(readers=1, writers=1, providers=2), 9100)
    providers = [s for s in services if s.module == "provider"]
    assert [p._env["ETHGW_PROVIDER_MANAGER_URL"] for p in providers] == [
        "http://127.0.0.1:9762"
    ] * 2
