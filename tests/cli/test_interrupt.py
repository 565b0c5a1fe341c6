"""A command that started servers stops them in order on SIGTERM, as on Ctrl-C."""

from __future__ import annotations

import signal
import subprocess
import sys

import pytest

from service_kit.paths import REPO_ROOT

# A command whose main coroutine "holds a server" until it is told to stop.
COMMAND = """
import asyncio
from devstack.interrupt import exit_status, run_stoppable

async def main() -> None:
    try:
        print("ready", flush=True)
        await asyncio.sleep(60)
    finally:
        await asyncio.sleep(0.1)  # an orderly stop awaits too
        print("stopped what it started", flush=True)

try:
    run_stoppable(main())
except KeyboardInterrupt as interrupt:
    print("interrupted", flush=True)
    raise SystemExit(exit_status(interrupt))
"""


def _signalled(sig: signal.Signals) -> tuple[str, int]:
    child = subprocess.Popen(
        [sys.executable, "-c", COMMAND],
        cwd=REPO_ROOT,
        stdout=subprocess.PIPE,
        text=True,
        # A terminal's Ctrl-C handler, whatever the test runner's own SIGINT disposition is.
        preexec_fn=lambda: signal.signal(signal.SIGINT, signal.SIG_DFL),
    )
    assert child.stdout is not None
    assert child.stdout.readline() == "ready\n"
    child.send_signal(sig)
    output, _ = child.communicate(timeout=20)
    return output, child.returncode


@pytest.mark.parametrize("sig", [signal.SIGTERM, signal.SIGINT], ids=["sigterm", "ctrl-c"])
def test_the_main_coroutine_finishes_its_stop_then_the_command_says_interrupted(
    sig: signal.Signals,
) -> None:
    """SIGTERM and Ctrl-C both cancel the main coroutine: its finally runs to the end."""
    output, _ = _signalled(sig)
    assert output == "stopped what it started\ninterrupted\n"


@pytest.mark.parametrize(
    ("sig", "code"), [(signal.SIGTERM, 143), (signal.SIGINT, 130)], ids=["sigterm", "ctrl-c"]
)
def test_the_exit_code_is_128_plus_the_signal(sig: signal.Signals, code: int) -> None:
    """After its orderly stop the command exits 143 on SIGTERM and 130 on Ctrl-C."""
    assert _signalled(sig)[1] == code
