"""The stack's Python services as child processes, each with a log file and a pid
file (so `ethgw down` can stop what a crashed `ethgw up` left behind)."""

from __future__ import annotations

import asyncio
import contextlib
import os
import signal
import subprocess
import sys
from collections.abc import Mapping
from pathlib import Path

import httpx
import psutil


class ServiceProcess:
    def __init__(
        self, name: str, module: str, env: Mapping[str, str], health_url: str, run_dir: Path
    ) -> None:
        self.name = name
        self.module = module
        self.health_url = health_url
        self.log_path = run_dir / f"{name}.log"
        self.pid_path = run_dir / f"{name}.pid"
        self._env = {**os.environ, **env}
        self._process: subprocess.Popen[bytes] | None = None
        self._log_offset = 0

    async def start(self) -> None:
        self.log_path.parent.mkdir(parents=True, exist_ok=True)
        self._log_offset = self.log_path.stat().st_size if self.log_path.exists() else 0
        self._process = await asyncio.to_thread(self._spawn)
        self.pid_path.write_text(str(self._process.pid))

    def _spawn(self) -> subprocess.Popen[bytes]:
        with self.log_path.open("ab") as log:
            return subprocess.Popen(
                [sys.executable, "-m", self.module],
                env=self._env,
                stdin=subprocess.DEVNULL,
                stdout=log,
                stderr=subprocess.STDOUT,
                start_new_session=True,
            )

    async def wait_healthy(self, timeout_s: float = 60.0) -> None:
        deadline = asyncio.get_running_loop().time() + timeout_s
        async with httpx.AsyncClient(timeout=2) as client:
            while asyncio.get_running_loop().time() < deadline:
                if self._process is not None and self._process.poll() is not None:
                    raise RuntimeError(f"{self.name} exited; see {self.log_path}")
                with contextlib.suppress(httpx.HTTPError):
                    if (await client.get(self.health_url)).status_code == 200:
                        return
                await asyncio.sleep(0.3)
        raise TimeoutError(f"{self.name} not healthy after {timeout_s:.0f}s; see {self.log_path}")

    @property
    def pid(self) -> int | None:
        """The pid while the process runs, else None."""
        return self._process.pid if self.alive and self._process is not None else None

    def log_since_start(self) -> str:
        """What the process wrote to its log since its latest start."""
        if not self.log_path.exists():
            return ""
        with self.log_path.open("rb") as log:
            log.seek(self._log_offset)
            return log.read().decode(errors="replace")

    async def kill(self) -> None:
        """kill -9: no drain, no commit, no deregistration; what a crash looks like."""
        if self._process is not None and self._process.poll() is None:
            self._process.kill()
            await asyncio.to_thread(self._process.wait, 10)
        self.pid_path.unlink(missing_ok=True)

    @property
    def alive(self) -> bool:
        return self._process is not None and self._process.poll() is None

    async def stop(self, timeout_s: float = 20.0) -> None:
        if self._process is not None:
            await asyncio.to_thread(_terminate, self._process, timeout_s)
        self.pid_path.unlink(missing_ok=True)


def _terminate(process: subprocess.Popen[bytes], timeout_s: float) -> None:
    if process.poll() is None:
        process.send_signal(signal.SIGTERM)
        try:
            process.wait(timeout_s)
        except subprocess.TimeoutExpired:
            process.kill()
            process.wait(10)


def stop_leftovers(run_dir: Path) -> int:
    """SIGTERM every service a pid file names that is still ours; returns how many."""
    stopped = 0
    for pid_file in run_dir.glob("*.pid"):
        with contextlib.suppress(ValueError, psutil.Error):
            process = psutil.Process(int(pid_file.read_text()))
            if "-m" in process.cmdline():
                process.terminate()
                process.wait(20)
                stopped += 1
        pid_file.unlink(missing_ok=True)
    return stopped
