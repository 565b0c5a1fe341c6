"""The service image installs the runtime lock, and what it ships needs nothing more.

requirements.lock pins `[project] dependencies` (the Dockerfile installs it);
requirements-dev.lock pins them with the bench and dev extras (`make` installs it). Both
carry hashes, and both installs require them."""

from __future__ import annotations

import re
import subprocess
import sys
import tomllib
from pathlib import Path

import pytest

from service_kit.paths import REPO_ROOT

RUNTIME_LOCK = REPO_ROOT / "requirements.lock"
DEV_LOCK = REPO_ROOT / "requirements-dev.lock"
# What the image ships: the services, the cluster and what they stand on.
SHIPPED = (
    "gateway",
    "read_service",
    "write_service",
    "provider",
    "geth_cluster",
    "consumer_service",
    "ethgw_wire",
    "balancer",
    "service_kit",
)
# Distributions of the bench and dev extras, by their import names too.
NOT_SHIPPED = (
    "matplotlib",
    "locust",
    "gevent",
    "pytest",
    "hypothesis",
    "playwright",
    "schemathesis",
    "mypy",
    "ruff",
    "import-linter",
    "importlinter",
    "pyyaml",
    "yaml",
)
PIN = re.compile(r"^([A-Za-z0-9][A-Za-z0-9._-]*)==(\S+)", re.M)
REQUIREMENT_NAME = re.compile(r"^[A-Za-z0-9][A-Za-z0-9._-]*")
# One pin and what follows it up to the next pin: its hashes and its "# via" comments.
PIN_ENTRY = re.compile(r"^[A-Za-z0-9][^\n]*==.*?(?=^[A-Za-z0-9]|\Z)", re.M | re.S)
HASH = re.compile(r"--hash=sha256:[0-9a-f]{64}")


def _normal(name: str) -> str:
    return re.sub(r"[-_.]+", "-", name).lower()


def pins(lock_text: str) -> dict[str, str]:
    """Distribution name (normalised) to pinned version, from a `uv pip compile` lock."""
    return {_normal(name): version for name, version in PIN.findall(lock_text)}


def runtime_requirements() -> set[str]:
    """The names in pyproject.toml's `[project] dependencies`."""
    project = tomllib.loads((REPO_ROOT / "pyproject.toml").read_text())["project"]
    return {_normal(REQUIREMENT_NAME.findall(spec)[0]) for spec in project["dependencies"]}


def test_the_dockerfile_installs_the_runtime_lock_alone() -> None:
    """The image's one pip install reads requirements.lock, never the dev lock."""
    dockerfile = (REPO_ROOT / "Dockerfile").read_text()
    installs = re.findall(r"^RUN pip install .*$", dockerfile, re.M)
    assert installs == ["RUN pip install --no-cache-dir --require-hashes -r requirements.lock"]
    assert "requirements-dev.lock" not in dockerfile


def test_the_runtime_lock_pins_every_runtime_dependency() -> None:
    """Each of `[project] dependencies` has a pin in requirements.lock."""
    missing = runtime_requirements() - pins(RUNTIME_LOCK.read_text()).keys()
    assert not missing, f"not in requirements.lock (run `make lock`): {sorted(missing)}"


def test_the_runtime_lock_holds_no_bench_or_dev_package() -> None:
    """requirements.lock has no plotting, load, test or lint distribution."""
    found = pins(RUNTIME_LOCK.read_text()).keys() & {_normal(n) for n in NOT_SHIPPED}
    assert not found


def test_the_dev_lock_pins_the_runtime_lock_at_the_same_versions() -> None:
    """Every runtime pin is in requirements-dev.lock with the same version."""
    runtime, dev = pins(RUNTIME_LOCK.read_text()), pins(DEV_LOCK.read_text())
    differing = {name: (v, dev.get(name)) for name, v in runtime.items() if dev.get(name) != v}
    assert not differing, f"runtime pin -> dev pin (run `make lock`): {differing}"


@pytest.mark.parametrize("lock", [RUNTIME_LOCK, DEV_LOCK], ids=lambda path: path.name)
def test_every_pin_of_a_lock_carries_a_hash(lock: Path) -> None:
    """Each pinned distribution lists the sha256 of its files (`make lock` generates them)."""
    entries = PIN_ENTRY.findall(lock.read_text())
    assert len(entries) == len(pins(lock.read_text()))
    unhashed = [entry.split()[0] for entry in entries if not HASH.search(entry)]
    assert not unhashed, f"pins without --hash (run `make lock`): {unhashed}"


def test_the_bootstrap_installs_the_dev_lock_requiring_hashes() -> None:
    """`make bootstrap` installs requirements-dev.lock with --require-hashes."""
    bootstrap = (REPO_ROOT / "scripts" / "bootstrap.sh").read_text()
    before_lock = bootstrap.split('-r "$ROOT/requirements-dev.lock"')[0]
    install = before_lock.rsplit("pip install", 1)[-1]
    assert "--require-hashes" in install


def test_the_dev_lock_pins_the_bench_and_lint_tools() -> None:
    """requirements-dev.lock holds the benchmark's, the charts' and the layer check's tools."""
    assert {"locust", "matplotlib", "import-linter"} <= pins(DEV_LOCK.read_text()).keys()


def test_importing_the_shipped_packages_loads_no_bench_or_dev_package() -> None:
    """Every shipped module imports (in a fresh interpreter) without a bench or dev package."""
    script = (
        "import importlib, pkgutil, sys\n"
        f"for top in {SHIPPED!r}:\n"
        "    package = importlib.import_module(top)\n"
        "    for info in pkgutil.walk_packages(package.__path__, top + '.'):\n"
        "        if not info.name.endswith('__main__'):\n"
        "            importlib.import_module(info.name)\n"
        "print(' '.join(sorted({m.split('.')[0] for m in sys.modules})))\n"
    )
    done = subprocess.run(
        [sys.executable, "-c", script],
        cwd=REPO_ROOT,
        capture_output=True,
        text=True,
        timeout=120,
        check=True,
    )
    assert not set(done.stdout.split()) & set(NOT_SHIPPED)
