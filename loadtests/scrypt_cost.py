"""What a keystore's scrypt costs on this machine: one create, one unlock, and a burst of
unlocks through the provider's bounded `Scrypt` (docs/pipeline.md, "Keystores").

    python -m loadtests.scrypt_cost [--n 262144] [--runs 5] [--burst 100]

Each phase runs in a fresh process, so its peak RSS (ru_maxrss) is its own; the figures
are process CPU seconds (every thread) and wall seconds. During the burst a ticker
measures the event loop's worst delay and another task's `to_thread` call its wait.
"""

from __future__ import annotations

import argparse
import asyncio
import json
import resource
import statistics
import subprocess
import sys
import time
from typing import Any

import psutil
from eth_account import Account

from ethgw_wire.settings import KeystoreSettings
from service_kit.keyfiles import Scrypt, decrypt_keystore, encrypt_keystore

PASSWORD = "measured password"


def _rss_mib() -> float:
    return float(psutil.Process().memory_info().rss) / 2**20


def _peak_mib() -> float:
    return resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024  # KiB on Linux


def _timed(work: Any) -> tuple[float, float]:
    wall, cpu = time.perf_counter(), time.process_time()
    work()
    return time.perf_counter() - wall, time.process_time() - cpu


def single(n: int, runs: int) -> dict[str, Any]:
    """Median wall and CPU seconds of `runs` creates and `runs` unlocks, one at a time."""
    start_rss = _rss_mib()
    key = Account.create().key
    keystore = encrypt_keystore(key, PASSWORD, n)
    creates = [_timed(lambda: encrypt_keystore(key, PASSWORD, n)) for _ in range(runs)]
    unlocks = [_timed(lambda: decrypt_keystore(keystore, PASSWORD)) for _ in range(runs)]
    return {
        "phase": "single",
        "create_wall_s": statistics.median(w for w, _ in creates),
        "create_cpu_s": statistics.median(c for _, c in creates),
        "unlock_wall_s": statistics.median(w for w, _ in unlocks),
        "unlock_cpu_s": statistics.median(c for _, c in unlocks),
        "rss_before_mib": start_rss,
        "peak_rss_mib": _peak_mib(),
    }


async def burst(n: int, count: int, slots: int) -> dict[str, Any]:
    """`count` unlocks started at once through Scrypt(n, slots)."""
    start_rss = _rss_mib()
    scrypt = Scrypt(n, slots)
    keystore = encrypt_keystore(Account.create().key, PASSWORD, n)
    worst_tick_s = 0.0
    executor_waits: list[float] = []
    done = asyncio.Event()

    async def ticker() -> None:
        nonlocal worst_tick_s
        while not done.is_set():
            before = time.perf_counter()
            await asyncio.sleep(0.01)
            worst_tick_s = max(worst_tick_s, time.perf_counter() - before - 0.01)
            before = time.perf_counter()
            await asyncio.to_thread(lambda: None)
            executor_waits.append(time.perf_counter() - before)

    watch = asyncio.create_task(ticker())
    wall, cpu = time.perf_counter(), time.process_time()
    await asyncio.gather(*(scrypt.decrypt(keystore, PASSWORD) for _ in range(count)))
    wall, cpu = time.perf_counter() - wall, time.process_time() - cpu
    done.set()
    await watch
    return {
        "phase": "burst",
        "unlocks": count,
        "slots": slots,
        "peak_at_once": scrypt.peak,
        "wall_s": wall,
        "cpu_s": cpu,
        "loop_worst_delay_s": worst_tick_s,
        "to_thread_worst_wait_s": max(executor_waits, default=0.0),
        "rss_before_mib": start_rss,
        "peak_rss_mib": _peak_mib(),
    }


def _phase_in_child(args: list[str]) -> dict[str, Any]:
    out = subprocess.run(
        [sys.executable, "-m", "loadtests.scrypt_cost", *args],
        check=True,
        capture_output=True,
        text=True,
    ).stdout
    result: dict[str, Any] = json.loads(out.strip().splitlines()[-1])
    return result


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--n", type=int, default=KeystoreSettings().scrypt_n)
    parser.add_argument("--runs", type=int, default=5)
    parser.add_argument("--burst", type=int, default=100)
    parser.add_argument("--slots", type=int, default=KeystoreSettings().slots())
    parser.add_argument("--phase", choices=["single", "burst"], help=argparse.SUPPRESS)
    args = parser.parse_args(argv)
    if args.phase == "single":
        print(json.dumps(single(args.n, args.runs)))
        return 0
    if args.phase == "burst":
        print(json.dumps(asyncio.run(burst(args.n, args.burst, args.slots))))
        return 0
    common = ["--n", str(args.n), "--runs", str(args.runs)]
    print(f"scrypt N={args.n} r=8 p=1, {psutil.cpu_count()} cores", flush=True)
    for phase in (
        ["--phase", "single", *common],
        ["--phase", "burst", *common, "--burst", str(args.burst), "--slots", str(args.slots)],
    ):
        print(json.dumps(_phase_in_child(phase)), flush=True)
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
