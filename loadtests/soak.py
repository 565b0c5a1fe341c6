"""The soak: a steady mixed load on a sandbox stack for minutes, then two checks.

1. The resident memory (RSS) of every Python service process (gateway, providers, read and
   write instances) has not grown by more than `max_growth` over `minutes` of load after
   the warm-up. The warm-up lasts until every instance's window of recent results
   (consumer_service.result_store.RESULT_RETENTION_S) is full: a bounded cache filling is no leak.
2. Every task a service accepted has its result.

`ethgw soak --minutes 10` (`make soak`) runs it on ports and a state folder of its own, with
a progress line every `progress_s`; it exits 1 when a check fails.
"""

from __future__ import annotations

import asyncio
import contextlib
import shutil
import statistics
import tempfile
import time
from dataclasses import dataclass
from pathlib import Path

import psutil

from consumer_service.result_store import RESULT_RETENTION_S
from devstack.sandbox import Sandbox, open_sandbox
from loadtests.steady import Call, ResultsLedger, SteadyLoad

MB = 1024 * 1024


@dataclass(frozen=True)
class SoakPlan:
    minutes: float = 10.0  # of load after the warm-up, while memory is watched
    warmup_s: float = RESULT_RETENTION_S + 30.0  # load before the memory baseline is taken
    progress_s: float = 30.0
    max_growth: float = 0.10
    readers: int = 4
    writers: int = 2


@dataclass(frozen=True)
class SoakVerdict:
    baseline_mb: dict[str, float]
    final_mb: dict[str, float]
    calls: int
    failures: int
    accepted: int
    unanswered: int
    max_growth: float

    def growth(self, name: str) -> float:
        return self.final_mb[name] / self.baseline_mb[name] - 1.0

    @property
    def grown(self) -> list[str]:
        kept = [n for n in self.baseline_mb if n in self.final_mb]
        return [n for n in kept if self.growth(n) > self.max_growth]

    @property
    def ok(self) -> bool:
        every_service_alive = set(self.final_mb) >= set(self.baseline_mb)
        return not self.grown and self.unanswered == 0 and every_service_alive


def rss_mb(sandbox: Sandbox) -> dict[str, float]:
    """Resident memory of each running Python service, in MiB."""
    found = {}
    for name, pid in sandbox.pids().items():
        with contextlib.suppress(psutil.Error):
            found[name] = psutil.Process(pid).memory_info().rss / MB
    return found


def _progress(elapsed: float, window: list[Call], total: int, memory: dict[str, float]) -> str:
    latencies = sorted(c.seconds for c in window) or [0.0]
    failed = sum(1 for c in window if not (c.ok or c.accepted))
    p99 = latencies[min(len(latencies) - 1, int(len(latencies) * 0.99))]
    rss = " ".join(f"{name}={mb:.0f}" for name, mb in sorted(memory.items()))
    return (
        f"soak t={elapsed:5.0f}s calls={total} last: {len(window)} calls {failed} failed "
        f"p50={statistics.median(latencies) * 1000:.0f}ms p99={p99 * 1000:.0f}ms  rss_mb: {rss}"
    )


async def run_soak(plan: SoakPlan, root: Path | None = None) -> SoakVerdict:
    """Start a sandbox, load it for `plan.minutes`, and judge it."""
    own_root = root is None
    folder = Path(tempfile.mkdtemp(prefix="ethgw-soak-")) if root is None else root
    try:
        print(f"soak: starting a sandbox stack in {folder}", flush=True)
        async with open_sandbox(folder) as sandbox:
            return await _soak(sandbox, plan)
    finally:
        if own_root:
            shutil.rmtree(folder, ignore_errors=True)


async def _soak(sandbox: Sandbox, plan: SoakPlan) -> SoakVerdict:
    ledger = ResultsLedger(sandbox.kafka_settings)
    await ledger.start()
    target = "0x" + "50" * 20
    load = SteadyLoad(
        sandbox.api, sandbox.admin_key, target, readers=plan.readers, writers=plan.writers
    )
    stop = asyncio.Event()
    started = time.time()
    running = asyncio.create_task(load.run(stop))
    duration = plan.warmup_s + plan.minutes * 60
    baseline: dict[str, float] = {}
    seen = 0
    try:
        print(
            f"soak: {plan.warmup_s:.0f}s of warm-up (the result window filling), then "
            f"{plan.minutes:g} min of load with the memory watched",
            flush=True,
        )
        while (elapsed := time.time() - started) < duration:
            await asyncio.sleep(min(plan.progress_s, max(0.0, duration - elapsed)))
            elapsed = time.time() - started
            if not baseline and elapsed >= plan.warmup_s:
                baseline = rss_mb(sandbox)
                print("soak: baseline rss_mb " + _mb(baseline), flush=True)
            window = load.calls[seen:]
            seen = len(load.calls)
            print(_progress(elapsed, window, seen, rss_mb(sandbox)), flush=True)
    finally:
        stop.set()
        await running
    final = rss_mb(sandbox)
    baseline = baseline or final
    accepted = ledger.accepted_between(started - 1.0, time.time() + 1.0)
    missing = await ledger.settle(accepted, 90.0)
    await ledger.stop()
    verdict = SoakVerdict(
        baseline_mb=baseline,
        final_mb=final,
        calls=len(load.calls),
        failures=sum(1 for c in load.calls if not (c.ok or c.accepted)),
        accepted=len(accepted),
        unanswered=len(missing),
        max_growth=plan.max_growth,
    )
    print(report(verdict), flush=True)
    return verdict


def _mb(memory: dict[str, float]) -> str:
    return " ".join(f"{name}={mb:.1f}" for name, mb in sorted(memory.items()))


def report(verdict: SoakVerdict) -> str:
    lines = [
        f"soak: {verdict.calls} calls, {verdict.failures} failed; "
        f"{verdict.accepted} tasks accepted, {verdict.unanswered} without a result",
        f"{'service':<12} {'baseline MiB':>12} {'final MiB':>10} {'growth':>8}",
    ]
    for name in sorted(verdict.baseline_mb):
        if name not in verdict.final_mb:
            lines.append(f"{name:<12} {verdict.baseline_mb[name]:>12.1f} {'gone':>10}")
            continue
        lines.append(
            f"{name:<12} {verdict.baseline_mb[name]:>12.1f} {verdict.final_mb[name]:>10.1f} "
            f"{verdict.growth(name) * 100:>7.1f}%"
        )
    grown = ", ".join(verdict.grown) or "none"
    lines.append(
        f"soak: {'PASSED' if verdict.ok else 'FAILED'} "
        f"(grown over {verdict.max_growth * 100:.0f}%: {grown}; unanswered: {verdict.unanswered})"
    )
    return "\n".join(lines)
