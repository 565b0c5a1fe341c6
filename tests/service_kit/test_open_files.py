"""A service raises its open-files limit at start, within what the hard limit allows."""

from __future__ import annotations

import resource
import subprocess
import sys

from service_kit.paths import REPO_ROOT

PRINT_LIMITS = """
import resource
from service_kit.serving import raise_open_files_limit
print(raise_open_files_limit(), resource.getrlimit(resource.RLIMIT_NOFILE)[0])
"""


def _limits_after_raise(soft: int) -> tuple[int, int]:
    """What raise_open_files_limit returns, and the soft limit then, in a process that
    starts with `soft` open files (the hard limit as this one has it)."""
    hard = resource.getrlimit(resource.RLIMIT_NOFILE)[1]
    output = subprocess.run(
        [sys.executable, "-c", PRINT_LIMITS],
        cwd=REPO_ROOT,
        capture_output=True,
        text=True,
        check=True,
        preexec_fn=lambda: resource.setrlimit(resource.RLIMIT_NOFILE, (soft, hard)),
    ).stdout.split()
    return int(output[0]), int(output[1])


def _expected(wanted: int) -> int:
    hard = resource.getrlimit(resource.RLIMIT_NOFILE)[1]
    return wanted if hard == resource.RLIM_INFINITY else min(wanted, hard)


def test_a_low_soft_limit_is_raised_to_what_the_hard_limit_allows() -> None:
    """Started with 256 open files allowed, the process may then open up to 65,536."""
    returned, now = _limits_after_raise(256)
    assert returned == now == _expected(65_536)
    assert now > 256
