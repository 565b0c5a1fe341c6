"""Refuse to start a server on a port that something else already holds."""

from __future__ import annotations

import socket


class PortInUseError(RuntimeError):
    """A port a component is configured to listen on is already taken."""


def is_port_free(port: int, host: str = "127.0.0.1") -> bool:
    """Whether a server could bind the port now."""
    with socket.socket(socket.AF_INET, socket.SOCK_STREAM) as probe:
        # Servers (Go's net package, the JVM) listen with SO_REUSEADDR, so a port
        # with only TIME_WAIT leftovers is free to them; probe the same way.
        probe.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
        try:
            probe.bind((host, port))
        except OSError:
            return False
        return True


def ensure_port_free(port: int, setting: str, host: str = "127.0.0.1") -> None:
    """Raise PortInUseError naming the port and the setting that chose it."""
    if not is_port_free(port, host):
        raise PortInUseError(
            f"port {port} ({setting}) is already in use on {host}: "
            "stop what holds it or choose another port"
        )


def free_port(host: str = "127.0.0.1") -> int:
    """A port the kernel says is free right now (for tests and ad-hoc runs)."""
    with socket.socket(socket.AF_INET, socket.SOCK_STREAM) as probe:
        probe.bind((host, 0))
        return int(probe.getsockname()[1])
