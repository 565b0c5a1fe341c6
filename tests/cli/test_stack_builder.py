"""One builder for every stack: `ethgw up` and the sandbox build their services alike."""

from __future__ import annotations

from pathlib import Path

import pytest

from balancer import Calibration
from devstack.kafka_broker import KafkaBroker
from devstack.sandbox import SANDBOX_SHAPE, wait_for_log
from devstack.stack import ServicePorts, Shape, build_services, manager_settings
from ethgw_wire.settings import KafkaSettings
from geth_cluster.cluster import GethCluster
from geth_cluster.manager import open_manager
from service_kit.ports import free_port

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


def test_the_managers_drain_reads_the_stacks_providers(monkeypatch: pytest.MonkeyPatch) -> None:
    """The manager of a stack gets its providers' URLs, so the drain waits for their tasks."""
    monkeypatch.delenv("ETHGW_MANAGER_PROVIDER_URLS", raising=False)
    ports = ServicePorts(gateway=9000, providers=(9001, 9002), readers=(), writers=())
    settings = manager_settings(ports, recycle=False)
    assert settings.provider_urls == ("http://127.0.0.1:9001", "http://127.0.0.1:9002")
    assert settings.recycle is False


def test_configured_provider_urls_win_over_the_stacks(monkeypatch: pytest.MonkeyPatch) -> None:
    """ETHGW_MANAGER_PROVIDER_URLS set by hand is kept (an empty list: the fixed drain)."""
    monkeypatch.setenv("ETHGW_MANAGER_PROVIDER_URLS", "[]")
    assert manager_settings(PORTS).provider_urls == ()


def test_the_calibration_file_reaches_every_provider(tmp_path: Path) -> None:
    """With `calibration_file`, each provider is given it in ETHGW_LBH_CALIBRATION_FILE."""
    two = ServicePorts(gateway=9000, providers=(9001, 9002), readers=(), writers=())
    path = tmp_path / "calibration.json"
    built = build_services(SANDBOX_SHAPE, two, tmp_path, calibration_file=path)
    assert [p._env["ETHGW_LBH_CALIBRATION_FILE"] for p in built.providers] == [str(path)] * 2


def test_the_managers_settings_name_the_same_calibration_file(tmp_path: Path) -> None:
    """`manager_settings` with a calibration file gives the manager that file."""
    path = tmp_path / "calibration.json"
    assert manager_settings(PORTS, path).calibration_file == path


def test_without_a_calibration_file_the_builder_sets_none(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    """No file given (the sandbox's fixed bounds): neither manager nor providers get one."""
    monkeypatch.delenv("ETHGW_LBH_CALIBRATION_FILE", raising=False)
    built = build_services(ONE_EACH, PORTS, tmp_path)
    assert "ETHGW_LBH_CALIBRATION_FILE" not in built.providers[0]._env
    assert manager_settings(PORTS).calibration_file is None


@pytest.mark.slow
async def test_the_stacks_manager_and_provider_use_the_stored_bounds(
    geth_cluster: GethCluster, kafka_broker: KafkaBroker, tmp_path: Path
) -> None:
    """The manager and a provider built by the stack builder both read the file's bounds."""
    path = tmp_path / "calibration.json"
    path.write_text(Calibration(0.0421, 0.6173).to_json())
    ports = ServicePorts(free_port(), (free_port(),), (), ())
    provider = build_services(
        Shape(providers=1, readers=0, writers=0),
        ports,
        tmp_path / "run",
        env={"ETHGW_STATE_DIR": str(tmp_path / "state")},
        calibration_file=path,
    ).providers[0]
    await provider.start()
    try:
        settings = manager_settings(
            ports, path, publish=False, recycle=False, heal=False, api_port=free_port()
        )
        async with open_manager(geth_cluster, KafkaSettings(), settings) as manager:
            snapshot = manager.snapshot()
        assert (snapshot.dis_avemin, snapshot.dis_avemax) == (0.0421, 0.6173)
        marker = f"calibration in use dis_avemin=0.0421 dis_avemax=0.6173 file={path}"
        await wait_for_log(provider, marker, timeout_s=60.0)
    finally:
        await provider.stop()


def test_without_a_manager_url_the_providers_get_none(tmp_path: Path) -> None:
    """The builder passes no manager URL unless asked: the sandbox's providers keep None."""
    services = build_services(ONE_EACH, PORTS, tmp_path).in_start_order()
    assert not [s.name for s in services if "ETHGW_PROVIDER_MANAGER_URL" in s._env]
