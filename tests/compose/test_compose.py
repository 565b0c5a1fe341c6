"""compose.yaml, its Dockerfile, Prometheus and Grafana files are consistent with the code.

No image can be pulled here, so the stack is never started: Debian's docker-compose checks
the file against the Compose Specification, and the rest are our own checks."""

from __future__ import annotations

import ipaddress
import os
import re
import shutil
import subprocess
from collections.abc import Callable
from pathlib import Path
from typing import Any

import pytest
from pydantic_settings import BaseSettings

from devstack.compose_init import (
    ETHERBASE_FILE,
    NODE_GENESIS_FILE,
    SEALER_PASSWORD_FILE,
    write_files,
    write_kafka_files,
)
from ethgw_wire.settings import ClusterSettings, KafkaSettings
from gateway.config import GatewaySettings
from geth_cluster.config import ManagerSettings
from provider.config import ProviderSettings
from read_service.config import ReadServiceSettings
from service_kit.paths import REPO_ROOT
from tests.compose.compose_file import (
    COMPOSE_FILE,
    DASHBOARD_FILE,
    DATASOURCE_FILE,
    METRIC_IN_QUERY,
    MONITORING_FILE,
    dashboard,
    dashboard_queries,
    environment,
    ethgw_services,
    exposed_metric_names,
    geth_services,
    load_yaml,
    prometheus_targets,
    python_module,
    services,
    settings_classes,
    settings_variables,
)
from write_service.config import WriteServiceSettings

ONE_SHOT = {"init", "platform"}
# Each long-running module of our image: its settings class and where it listens.
LISTENERS: dict[str, tuple[type[BaseSettings], str, str]] = {
    "gateway": (GatewaySettings, "host", "port"),
    "geth_cluster.api": (ManagerSettings, "api_host", "api_port"),
    "provider": (ProviderSettings, "http_host", "http_port"),
    "read_service": (ReadServiceSettings, "http_host", "http_port"),
    "write_service": (WriteServiceSettings, "http_host", "http_port"),
}
# What GET /admin/cluster shows, as the metrics the dashboard must query.
ADMIN_CLUSTER_FIGURES = {
    "ethgw_node_zone",
    "ethgw_node_distance",
    "ethgw_node_cpu_ratio",
    "ethgw_node_memory_ratio",
    "ethgw_node_lifecycle",
    "ethgw_cluster_lbh",
    "ethgw_cluster_dis_ave",
    "ethgw_manager_restarts_total",
    "ethgw_gateway_requests_total",
    "ethgw_gateway_request_duration_seconds_bucket",
}


@pytest.fixture
def service_env(monkeypatch: pytest.MonkeyPatch) -> Callable[[dict[str, Any]], None]:
    """Sets exactly one service's ETHGW_ variables, as its container would see them."""

    def apply(service: dict[str, Any]) -> None:
        for name in [n for n in os.environ if n.startswith("ETHGW_")]:
            monkeypatch.delenv(name)
        for name, value in environment(service).items():
            monkeypatch.setenv(name, value)

    return apply


def long_running() -> dict[str, dict[str, Any]]:
    return {n: s for n, s in ethgw_services().items() if n not in ONE_SHOT}


@pytest.mark.parametrize("overrides", [[], [MONITORING_FILE]], ids=["alone", "monitoring"])
def test_docker_compose_accepts_the_file(overrides: list[Path]) -> None:
    """`docker-compose config` (Debian's, the Compose Specification) validates the file, alone
    and with the opt-in monitoring ports."""
    binary = shutil.which("docker-compose")
    if binary is None:
        pytest.skip("docker-compose is not installed (scripts/bootstrap.sh installs it as root)")
    files = [arg for path in [COMPOSE_FILE, *overrides] for arg in ("-f", str(path))]
    done = subprocess.run(
        [binary, *files, "config", "-q"],
        capture_output=True,
        text=True,
        timeout=120,
        check=False,
    )
    assert done.returncode == 0, done.stderr


def test_every_image_is_pinned_or_built_from_the_dockerfile() -> None:
    """Each service runs a tagged upstream image, or ours, built from the repo's Dockerfile."""
    for name, service in services().items():
        image = str(service.get("image", ""))
        if "build" in service:
            context = REPO_ROOT / service["build"]["context"]
            assert (context / service["build"]["dockerfile"]).is_file(), name
        else:
            repository, _, tag = image.rpartition(":")
            assert repository, f"{name}: image {image!r} has no tag"
            assert tag not in ("", "latest"), f"{name}: image {image!r} not pinned"


def test_depends_on_names_existing_services() -> None:
    """Every depends_on entry names a service of the file."""
    known = set(services())
    for name, service in services().items():
        for dependency in service.get("depends_on") or []:
            assert dependency in known, f"{name} depends on unknown {dependency}"


def test_published_ports_are_unique_and_on_loopback() -> None:
    """No two services publish one host port, and every published port binds 127.0.0.1."""
    published = [
        (name, str(port)) for name, s in services().items() for port in s.get("ports") or []
    ]
    host_ports = [spec.split(":")[1] for _, spec in published]
    assert len(host_ports) == len(set(host_ports))
    assert all(spec.startswith("127.0.0.1:") for _, spec in published), published


def test_only_the_gateway_is_published() -> None:
    """The gateway is the one way in: no other service publishes a port."""
    publishing = {name for name, s in services().items() if s.get("ports")}
    assert publishing == {"gateway"}


def test_monitoring_ports_are_opt_in_and_on_loopback() -> None:
    """The monitoring override publishes Prometheus and Grafana, on loopback only."""
    extra = load_yaml(MONITORING_FILE)["services"]
    assert set(extra) == {"prometheus", "grafana"}
    for name, service in extra.items():
        assert all(str(p).startswith("127.0.0.1:") for p in service["ports"]), name


def mounts(service: dict[str, Any]) -> list[tuple[str, str, dict[str, Any]]]:
    """Each volume a service mounts, short or long syntax: source, target, the rest."""
    found = []
    for volume in service.get("volumes") or []:
        if isinstance(volume, dict):
            found.append((str(volume["source"]), str(volume["target"]), volume))
        else:
            source, target, *options = str(volume).split(":")
            found.append((source, target, {"read_only": options == ["ro"]}))
    return found


def state_volumes(service: dict[str, Any]) -> dict[str, str]:
    """Named volumes a service mounts, by name: their mount point."""
    return {
        source: target
        for source, target, _ in mounts(service)
        if not source.startswith(("./", "/"))
    }


def node_volumes() -> set[str]:
    """One volume per Geth node: its own folder."""
    return {f"cluster-{name}" for name in geth_services()}


# What each container may mount of the state (the parts of /state): nothing more. A Geth
# node mounts its own folder alone (checked below).
STATE_NEEDS = {
    "init": {"cluster", "accounts", "kafka-config", "kafka-admin", "kafka-platform", "kafka-data"},
    "platform": {"accounts", "platform", "sealing", "kafka-admin"},
    "manager": {"cluster", "accounts", "auth", "kafka-platform"},
    "gateway": {"gateway-keys", "auth", "kafka-platform"},
    "provider": {"accounts", "platform", "auth", "sealing", "kafka-platform"},
    "read_service": {"auth", "sealing", "kafka-platform"},
    "write_service": {"auth", "sealing", "kafka-platform"},
    "geth": set(),
    "kafka": {"kafka-config", "kafka-data"},
}


def role(name: str, service: dict[str, Any]) -> str:
    if name in geth_services():
        return "geth"
    if name in ONE_SHOT or name == "kafka":
        return name
    module = python_module(service)
    return "manager" if module == "geth_cluster.api" else module


def test_each_container_mounts_only_the_state_it_needs() -> None:
    """Nobody mounts the whole state folder; the admin key and key hashes reach the gateway
    alone, the platform accounts never reach a Geth node or a read or write service."""
    kafka = {"kafka": services()["kafka"]}
    for name, service in {**ethgw_services(), **geth_services(), **kafka}.items():
        volumes = state_volumes(service)
        assert "/state" not in volumes.values(), f"{name} mounts the whole state folder"
        needs = STATE_NEEDS[role(name, service)]
        if role(name, service) in ("init", "manager"):
            needs = needs | node_volumes()
        if role(name, service) == "geth":
            needs = {f"cluster-{name}"}
        assert set(volumes) == needs, f"{name}: {sorted(volumes)}"
    gateway_keys = {n for n, s in services().items() if "gateway-keys" in state_volumes(s)}
    assert gateway_keys == {"gateway"}


def test_each_geth_node_mounts_only_its_own_folder() -> None:
    """A node sees its own folder, a volume no other node mounts, never another's data."""
    for name, service in geth_services().items():
        assert state_volumes(service) == {f"cluster-{name}": f"/state/cluster/{name}"}
    for name, service in services().items():
        for volume in node_volumes() & set(state_volumes(service)):
            assert name in ("init", "manager", volume.removeprefix("cluster-")), (name, volume)


def test_kafka_passwords_reach_only_who_uses_them() -> None:
    """The admin's password reaches init and the platform step alone; the platform's reaches
    the services read-only; the broker sees its config, never the password volumes."""
    by_volume: dict[str, set[str]] = {}
    for name, service in services().items():
        for source, _, options in mounts(service):
            by_volume.setdefault(source, set()).add(name)
            if source == "kafka-platform" and name not in ONE_SHOT:
                assert options.get("read_only"), f"{name} mounts the Kafka password writable"
    assert by_volume["kafka-admin"] == {"init", "platform"}
    assert by_volume["kafka-config"] == {"init", "kafka"}


def test_readers_of_the_accounts_mount_them_read_only() -> None:
    """Only init and the platform step write accounts; the manager and providers read them."""
    for name, service in ethgw_services().items():
        for volume in service.get("volumes") or []:
            source, target, *options = str(volume).split(":")
            if source == "accounts" and role(name, service) not in ONE_SHOT:
                assert options == ["ro"], f"{name} mounts {target} writable"


def test_every_state_mount_point_is_made_private_in_the_image() -> None:
    """Each /state/... mount point of our image's services is made (0700, the service user's)
    in the Dockerfile, so an empty named volume is born private and writable by the service."""
    dockerfile = (REPO_ROOT / "Dockerfile").read_text()
    assert "chmod -R 0700 /state" in dockerfile
    for name, service in ethgw_services().items():
        for target in state_volumes(service).values():
            assert target in dockerfile, f"{name}: the image does not make {target}"


def test_geth_rpc_and_kafka_stay_on_the_private_network() -> None:
    """Neither the Geth nodes nor Kafka publish a port."""
    private = {**geth_services(), "kafka": services()["kafka"]}
    assert len(geth_services()) >= 2
    for name, service in private.items():
        assert not service.get("ports"), f"{name} publishes {service['ports']}"


def test_every_ethgw_variable_is_a_setting() -> None:
    """Each ETHGW_ variable the file sets is read by a settings class (or the code's paths)."""
    known = settings_variables()
    assert "ETHGW_GATEWAY_PORT" in known  # the collection itself works
    for name, service in services().items():
        unknown = {v for v in environment(service) if v.startswith("ETHGW_")} - known
        assert not unknown, f"{name} sets variables no settings class reads: {sorted(unknown)}"


def test_each_service_environment_gives_valid_settings(service_env: Any) -> None:
    """Every settings class accepts the environment of every service of our image."""
    for name, service in ethgw_services().items():
        service_env(service)
        for cls in settings_classes():
            try:
                cls()
            except ValueError as error:
                pytest.fail(f"{name}: {cls.__name__} refuses its environment: {error}")


def test_services_listen_on_the_compose_network(service_env: Any) -> None:
    """Each long-running service of our image listens beyond loopback, where it is reached."""
    for name, service in long_running().items():
        cls, host_field, _ = LISTENERS[python_module(service)]
        service_env(service)
        assert getattr(cls(), host_field) == "0.0.0.0", name


def test_prometheus_scrapes_every_service_where_it_listens(service_env: Any) -> None:
    """The scrape targets are exactly the long-running services of our image, at their ports."""
    listening = {}
    for name, service in long_running().items():
        cls, _, port_field = LISTENERS[python_module(service)]
        service_env(service)
        listening[name] = getattr(cls(), port_field)
    targets = {host: port for _, host, port in prometheus_targets()}
    assert targets == listening


def test_instances_register_the_url_they_are_reached_at(service_env: Any) -> None:
    """Each read and write instance registers http://<its service name>:<its port>."""
    for name, service in long_running().items():
        module = python_module(service)
        if module not in ("read_service", "write_service"):
            continue
        cls, _, port_field = LISTENERS[module]
        service_env(service)
        settings = cls()
        assert settings.public_url == f"http://{name}:{getattr(settings, port_field)}"  # type: ignore[attr-defined]
        assert settings.gateway_url == "http://gateway:8000"  # type: ignore[attr-defined]


def test_geth_nodes_match_the_cluster_settings(service_env: Any) -> None:
    """The node services are the sealer and node-1..N of ETHGW_CLUSTER_NODES, each at the
    fixed address the init step gives its peers (base + index)."""
    init = services()["init"]
    base = ipaddress.IPv4Address(init["command"][init["command"].index("--peer-address-base") + 1])
    service_env(init)
    expected = ["sealer"] + [f"node-{i}" for i in range(1, ClusterSettings().nodes + 1)]
    assert sorted(geth_services()) == sorted(expected)
    for index, name in enumerate(expected):
        node = geth_services()[name]
        assert environment(node) == {"NODE_NAME": name, "NODE_INDEX": str(index)}
        assert node["labels"]["ethgw.node"] == name
        assert node["networks"]["ethgw"]["ipv4_address"] == str(base + index)


def test_the_manager_adopts_exactly_the_node_containers(service_env: Any) -> None:
    """The manager runs the compose runtime, and its selector label is on every node service
    and on no other."""
    service_env(services()["manager"])
    settings = ClusterSettings()
    key, value = settings.compose_selector.split("=", 1)
    assert settings.runtime == "compose"
    selected = {n for n, s in services().items() if (s.get("labels") or {}).get(key) == value}
    assert selected == set(geth_services())


def broker_files(service_env: Any, tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> Path:
    """The init step's Kafka files under tmp_path, from init's environment; the config dir."""
    service_env(services()["init"])
    for variable in ("STATE_DIR", "PASSWORD_FILE", "ADMIN_PASSWORD_FILE"):
        name = f"ETHGW_KAFKA_{variable}"
        monkeypatch.setenv(name, str(tmp_path) + os.environ[name])
    write_kafka_files()
    return Path(os.environ["ETHGW_KAFKA_STATE_DIR"])


def properties(path: Path) -> dict[str, str]:
    lines = path.read_text().splitlines()
    return dict(line.split("=", 1) for line in lines if line and not line.startswith("#"))


def test_kafka_advertises_the_host_the_services_use(
    service_env: Any, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    """The broker's advertised listener is the host and port in the services' settings."""
    config = properties(broker_files(service_env, tmp_path, monkeypatch) / "server.properties")
    service_env(services()["gateway"])
    assert config["advertised.listeners"] == f"CLIENT://{KafkaSettings().bootstrap_servers}"


def test_the_compose_broker_takes_only_the_platforms_principals(
    service_env: Any, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    """The compose broker has SASL and ACLs like `ethgw up`'s, its storage is formatted with
    both principals' SCRAM users, and the passwords are 0600 and off every command line."""
    folder = broker_files(service_env, tmp_path, monkeypatch)
    config = properties(folder / "server.properties")
    assert config["listener.security.protocol.map"] == (
        "CONTROLLER:SASL_PLAINTEXT,CLIENT:SASL_PLAINTEXT"
    )
    assert config["allow.everyone.if.no.acl.found"] == "false"
    settings = KafkaSettings()
    format_args = (folder / "format.args").read_text()
    for user, path in (
        (settings.admin_username, settings.admin_password_path),
        (settings.username, settings.platform_password_path),
    ):
        assert f"name={user},password={path.read_text().strip()}]" in format_args
        assert path.stat().st_mode & 0o777 == 0o600
    script = (REPO_ROOT / "deploy" / "kafka" / "run-broker.sh").read_text()
    assert '@"$CONFIG/format.args"' in script
    assert "--add-scram" not in script


def test_every_file_mounted_from_the_repo_exists() -> None:
    """Each ./path bind mount points at a file or folder of the repository."""
    for name, service in services().items():
        for volume in service.get("volumes") or []:
            source = str(volume).split(":", 1)[0]
            if source.startswith("./"):
                assert (REPO_ROOT / source).exists(), f"{name}: {source} is missing"


def test_the_dockerfile_copies_every_module_a_service_runs() -> None:
    """The image holds the package of each `python -m` module compose.yaml runs."""
    copied = set(re.findall(r"^COPY (\w+)/ ", (REPO_ROOT / "Dockerfile").read_text(), re.M))
    for name, service in ethgw_services().items():
        package = python_module(service).split(".")[0]
        assert package in copied, f"{name} runs {package}, which the Dockerfile does not copy"


def test_every_dashboard_query_names_a_defined_metric() -> None:
    """Each metric a Grafana query names is exposed by a metric definition in the code."""
    defined = exposed_metric_names()
    assert "ethgw_gateway_requests_total" in defined  # the scan itself works
    for title, query in dashboard_queries():
        unknown = set(METRIC_IN_QUERY.findall(query)) - defined
        assert not unknown, f"panel {title!r} queries undefined {sorted(unknown)}"


def test_the_dashboard_shows_the_admin_cluster_figures() -> None:
    """Zone, distance, CPU, memory, life cycle, LBH, Dis_ave, restarts, gateway rate and
    latency each appear in some panel."""
    queried = {name for _, query in dashboard_queries() for name in METRIC_IN_QUERY.findall(query)}
    assert queried >= ADMIN_CLUSTER_FIGURES, sorted(ADMIN_CLUSTER_FIGURES - queried)


def test_the_dashboard_uses_the_provisioned_datasource() -> None:
    """Every panel and target refers to the uid of the provisioned Prometheus datasource."""
    uid = load_yaml(DATASOURCE_FILE)["datasources"][0]["uid"]
    for panel in dashboard()["panels"]:
        assert panel["datasource"]["uid"] == uid, panel["title"]
        assert all(t["datasource"]["uid"] == uid for t in panel["targets"]), panel["title"]
    mounted = services()["grafana"]["volumes"]
    assert any(
        str(v).startswith(f"./{DASHBOARD_FILE.parent.relative_to(REPO_ROOT)}:") for v in mounted
    )


async def test_init_writes_static_peers_at_the_fixed_addresses(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    """The init step's config.toml files dial each peer at base + its index, and the sealer's
    folder names the address its command line unlocks."""
    monkeypatch.setenv("ETHGW_STATE_DIR", str(tmp_path))
    monkeypatch.setenv("ETHGW_CLUSTER_NODES", "2")
    await write_files("172.28.0.10")
    node_1 = (tmp_path / "cluster" / "node-1" / "config.toml").read_text()
    sealer = (tmp_path / "cluster" / "sealer" / "config.toml").read_text()
    assert "@172.28.0.10:30303" in node_1  # the sealer
    assert "@172.28.0.12:30305" in sealer  # node-2
    etherbase = (tmp_path / "cluster" / "sealer" / ETHERBASE_FILE).read_text()
    assert etherbase.startswith("0x")
    assert len(etherbase) == 42
    # The node containers mount the chain's volume only: the sealer's password is its own.
    password = tmp_path / "cluster" / "sealer" / SEALER_PASSWORD_FILE
    assert (
        password.read_text() == (tmp_path / "cluster" / "accounts" / "sealer.password").read_text()
    )
    assert password.stat().st_mode & 0o777 == 0o600
    # Peers dial the container's address: geth listens for them beyond its loopback.
    assert 'ListenAddr = "0.0.0.0:30304"' in node_1
    assert (tmp_path / "cluster" / "genesis.json").is_file()
    # Each node container mounts its own folder alone: the genesis is copied into it.
    genesis = (tmp_path / "cluster" / "genesis.json").read_text()
    assert (tmp_path / "cluster" / "node-2" / NODE_GENESIS_FILE).read_text() == genesis


def test_the_gateway_reads_every_providers_metrics(service_env: Any) -> None:
    """The gateway's provider URLs (the dashboard's in-flight column) are exactly the provider
    services, at the ports they listen on."""
    expected = set()
    for name, service in long_running().items():
        if python_module(service) == "provider":
            service_env(service)
            expected.add(f"http://{name}:{ProviderSettings().http_port}")
    service_env(services()["gateway"])
    assert expected
    assert set(GatewaySettings().provider_urls) == expected
