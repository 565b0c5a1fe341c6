"""One builder for every stack: `ethgw up` and the sandbox build their services alike."""

from __future__ import annotations

from pathlib import Path

import pytest

from devstack.sandbox import SANDBOX_SHAPE
from devstack.stack import ServicePorts, Shape, build_services

PORTS = ServicePorts(gateway=9000, providers=(9001,), readers=(9002,), writers=(9003,))
ONE_EACH = Shape(providers=1, readers=1, writers=1)


def test_services_come_in_start_order_with_their_ports(tmp_path: Path) -> None:
    """The gateway first, then providers, readers and writers, each on its own port."""
    services = build_services(ONE_EACH, PORTS, tmp_path).in_start_order()
    assert [(s.name, s.module, s.health_url) for s in services] == [
        ("gateway", "gateway", "http://127.0.0.1:9000/healthz"),
        ("provider-1", "provider", "http://127.0.0.1:9001/healthz"),
        ("read-1", "read_service", "http://127.0.0.1:9002/healthz"),
        ("write-1", "write_service", "http://127.0.0.1:9003/healthz"),
    ]


def test_shared_settings_reach_every_service_and_gateway_settings_the_gateway(
    tmp_path: Path,
) -> None:
    """`env` is in every service's environment; `gateway_env` in the gateway's alone."""
    built = build_services(
        ONE_EACH, PORTS, tmp_path, env={"ETHGW_STATE_DIR": "/x"}, gateway_env={"G": "1"}
    )
    services = built.in_start_order()
    assert all(s._env["ETHGW_STATE_DIR"] == "/x" for s in services)
    assert [s.name for s in services if s._env.get("G") == "1"] == ["gateway"]


def test_a_registry_ttl_reaches_the_gateway_and_the_instances_that_register(
    tmp_path: Path,
) -> None:
    """With `registry_ttl_s`, the gateway and every read and write instance get it."""
    built = build_services(SANDBOX_SHAPE, ServicePorts.free(SANDBOX_SHAPE), tmp_path)
    assert built.gateway._env["ETHGW_GATEWAY_REGISTRY_TTL_S"] == "3.0"
    assert all(r._env["ETHGW_READ_REGISTRY_TTL_S"] == "3.0" for r in built.readers)
    assert all(w._env["ETHGW_WRITE_REGISTRY_TTL_S"] == "3.0" for w in built.writers)


def test_without_a_registry_ttl_the_services_keep_their_default(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    """No `registry_ttl_s`: no service is given a TTL setting by the builder."""
    for kind in ("GATEWAY", "READ", "WRITE"):
        monkeypatch.delenv(f"ETHGW_{kind}_REGISTRY_TTL_S", raising=False)
    services = build_services(ONE_EACH, PORTS, tmp_path).in_start_order()
    assert not [key for s in services for key in s._env if key.endswith("REGISTRY_TTL_S")]


def test_free_ports_give_each_instance_a_port_of_its_own() -> None:
    """`ServicePorts.free` picks one distinct port per instance of the shape."""
    ports = ServicePorts.free(SANDBOX_SHAPE)
    every = [ports.gateway, *ports.providers, *ports.readers, *ports.writers]
    shape = SANDBOX_SHAPE
    assert len(every) == 1 + shape.providers + shape.readers + shape.writers
    assert len(set(every)) == len(every)


def test_the_sandbox_shape_keeps_the_sandbox_defaults() -> None:
    """Three nodes, two providers, two readers and writers, LBH, Geth as processes, 3 s TTL."""
    assert (
        Shape(
            nodes=3,
            providers=2,
            readers=2,
            writers=2,
            strategy="lbh",
            runtime="process",
            registry_ttl_s=3.0,
        )
        == SANDBOX_SHAPE
    )


def test_without_a_manager_url_the_providers_get_none(tmp_path: Path) -> None:
    """The builder passes no manager URL unless asked: the sandbox's providers keep None."""
    services = build_services(ONE_EACH, PORTS, tmp_path).in_start_order()
    assert not [s.name for s in services if "ETHGW_PROVIDER_MANAGER_URL" in s._env]
