"""Reading compose.yaml, its Prometheus and Grafana files, and what the code defines
(settings variables, metric names), for the checks of test_compose.py."""

from __future__ import annotations

import ast
import json
import re
from functools import cache
from pathlib import Path
from typing import Any

import yaml
from pydantic_settings import BaseSettings

from service_kit.paths import REPO_ROOT

COMPOSE_FILE = REPO_ROOT / "compose.yaml"
# Opt-in: the monitoring ports (compose.yaml publishes the gateway alone).
MONITORING_FILE = REPO_ROOT / "deploy" / "compose.monitoring.yaml"
PROMETHEUS_FILE = REPO_ROOT / "deploy" / "prometheus" / "prometheus.yml"
GRAFANA_DIR = REPO_ROOT / "deploy" / "grafana"
DASHBOARD_FILE = GRAFANA_DIR / "dashboards" / "ethgw.json"
DATASOURCE_FILE = GRAFANA_DIR / "provisioning" / "datasources" / "prometheus.yaml"
ETHGW_IMAGE = "ethgw:local"
CODE_FOLDERS = (
    "ethgw_wire",
    "service_kit",
    "consumer_service",
    "devstack",
    "balancer",
    "geth_cluster",
    "gateway",
    "read_service",
    "write_service",
    "provider",
    "ethgw",
)

METRIC_IN_QUERY = re.compile(r"\bethgw_[a-z0-9_]+\b")
ENV_READ = re.compile(r"""os\.environ(?:\.get\(|\[)\s*["'](ETHGW_[A-Z0-9_]+)["']""")


def load_yaml(path: Path) -> Any:
    return yaml.safe_load(path.read_text())


@cache
def compose() -> dict[str, Any]:
    loaded: dict[str, Any] = load_yaml(COMPOSE_FILE)
    return loaded


def services() -> dict[str, dict[str, Any]]:
    found: dict[str, dict[str, Any]] = compose()["services"]
    return found


def environment(service: dict[str, Any]) -> dict[str, str]:
    """A service's environment as a mapping (compose allows a list of NAME=value too)."""
    env = service.get("environment") or {}
    if isinstance(env, list):
        env = dict(item.split("=", 1) for item in env)
    return {str(k): str(v) for k, v in env.items()}


def ethgw_services() -> dict[str, dict[str, Any]]:
    """The services that run our image."""
    return {name: s for name, s in services().items() if s.get("image") == ETHGW_IMAGE}


def geth_services() -> dict[str, dict[str, Any]]:
    return {
        name: s
        for name, s in services().items()
        if str(s.get("image", "")).startswith("ethereum/client-go:")
    }


def python_module(service: dict[str, Any]) -> str:
    """The module `python -m` runs for a service of our image (the entrypoint is python -m)."""
    command = service.get("command") or ["gateway"]
    return str(command[0])


# -- what the code defines --------------------------------------------------------------


def _import_settings_modules() -> None:
    import consumer_service.app
    import ethgw_wire.settings
    import gateway.config
    import geth_cluster.config
    import provider.config
    import read_service.config
    import write_service.config

    del consumer_service, ethgw_wire, gateway, geth_cluster, provider, read_service, write_service


def settings_classes() -> list[type[BaseSettings]]:
    """Every settings class the services define (their modules imported first)."""
    _import_settings_modules()
    found: list[type[BaseSettings]] = []
    pending = list(BaseSettings.__subclasses__())
    while pending:
        cls = pending.pop()
        pending.extend(cls.__subclasses__())
        if cls.__module__.split(".")[0] in CODE_FOLDERS:
            found.append(cls)
    return found


def settings_variables() -> set[str]:
    """Every ETHGW_ variable a settings class reads, plus those the code reads from os.environ."""
    names: set[str] = set()
    for cls in settings_classes():
        prefix = str(cls.model_config.get("env_prefix", ""))
        for field_name, field in cls.model_fields.items():
            alias = field.validation_alias
            choices = getattr(alias, "choices", None)
            if choices is not None:
                names.update(str(c).upper() for c in choices if str(c).upper().startswith("ETHGW_"))
            elif isinstance(alias, str):
                names.add(alias.upper())
            elif prefix:
                names.add(f"{prefix}{field_name}".upper())
    for folder in CODE_FOLDERS:
        for path in (REPO_ROOT / folder).rglob("*.py"):
            names.update(ENV_READ.findall(path.read_text()))
    return names


_METRIC_CLASSES = {
    "Counter": ("_total", "_created"),
    "Gauge": ("",),
    "Histogram": ("_bucket", "_sum", "_count", "_created"),
    "Summary": ("", "_sum", "_count", "_created"),
    "CounterMetricFamily": ("_total", "_created"),
    "GaugeMetricFamily": ("",),
    "HistogramMetricFamily": ("_bucket", "_sum", "_count"),
}


def _called_name(node: ast.Call) -> str | None:
    func = node.func
    if isinstance(func, ast.Name):
        return func.id
    if isinstance(func, ast.Attribute):
        return func.attr
    return None


@cache
def exposed_metric_names() -> frozenset[str]:
    """The series names the code's metric definitions expose (a Counter "x" is "x_total")."""
    names: set[str] = set()
    for folder in CODE_FOLDERS:
        for path in (REPO_ROOT / folder).rglob("*.py"):
            for node in ast.walk(ast.parse(path.read_text())):
                if not isinstance(node, ast.Call) or not node.args:
                    continue
                suffixes = _METRIC_CLASSES.get(_called_name(node) or "")
                first = node.args[0]
                if suffixes is None or not isinstance(first, ast.Constant):
                    continue
                if not isinstance(first.value, str) or not first.value.startswith("ethgw_"):
                    continue
                base = first.value.removesuffix("_total")
                names.update(base + suffix for suffix in suffixes)
    return frozenset(names)


# -- Grafana and Prometheus ---------------------------------------------------------------


def dashboard() -> dict[str, Any]:
    loaded: dict[str, Any] = json.loads(DASHBOARD_FILE.read_text())
    return loaded


def dashboard_queries() -> list[tuple[str, str]]:
    """(panel title, query) for every target of every panel."""
    return [
        (panel["title"], target["expr"])
        for panel in dashboard()["panels"]
        for target in panel.get("targets", [])
    ]


def prometheus_targets() -> list[tuple[str, str, int]]:
    """(job, host, port) of every static scrape target."""
    config = load_yaml(PROMETHEUS_FILE)
    found = []
    for job in config["scrape_configs"]:
        for static in job["static_configs"]:
            for target in static["targets"]:
                host, port = target.rsplit(":", 1)
                found.append((job["job_name"], host, int(port)))
    return found
