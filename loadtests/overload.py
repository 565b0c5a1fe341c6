"""`ethgw demo overload`: one node driven to saturation under a moderate load, live.

Against a running stack (`ethgw up`), the demo:

1. runs a steady load through the gateway (`loadtests.steady.SteadyLoad`: reads and mints,
   counted as the gateway answered them), and, when asked, the thesis's table 5.1 mix in
   Locust beside it;
2. after a warm-up, saturates one node directly, as a runaway indexer would: many loops of
   heavy `eth_call`s (each holds 4 MB of EVM memory while it burns CPU) sent to its RPC port,
   past the gateway. The loops stop when the node's connections are cut (its restart), which
   is what clears a runaway client;
3. watches the cluster manager's `/nodes` and `/events` every second, printing a line with each
   node's zone, until the saturated node is back in service (UP, zone I or II) or a timeout;
4. reports the zone occupancy per node (from the manager's samples) and per task class (from
   the providers' `ethgw_provider_dispatched_total{node,zone,task_class}`), whether the node was
   recycled, the time from the overload's start to the node back in service, and the gateway's
   success and failure counts.

Nothing is configured for it: the manager and the providers keep the bounds and the settings
the stack started with.
"""

from __future__ import annotations

import asyncio
import contextlib
import json
import os
import sys
import time
from collections import Counter
from collections.abc import AsyncIterator, Callable, Iterable, Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import httpx

from devstack.stack import ServicePorts, Shape, known_nodes, provider_urls
from ethgw_wire.provider_metrics import Placement, dispatched_by_placement
from ethgw_wire.request_auth import signing_auth
from ethgw_wire.settings import ClusterSettings
from gateway.keys import read_admin_key
from geth_cluster.config import ManagerSettings
from geth_cluster.errors import NodeUnreachableError, RpcError
from geth_cluster.layout import pool_specs
from geth_cluster.node_rpc import rpc_call
from loadtests.sampler import ZoneSample
from loadtests.steady import Call, SteadyLoad
from service_kit.paths import REPO_ROOT, default_state_dir

# One runaway call: it touches the EVM memory at 4 MB (MSTORE at 0x3fffe0), then counts down
# from 0x7ffff. Each call holds 4 MB of geth's heap while it burns CPU, so a node under many of
# them grows in memory as well as in CPU: its distance rises even when the host leaves it little
# CPU (a shared host, where the calibration's CPU-only probe measured its saturated distance).
# About 47.6M gas: 33.95M for the memory, 13.6M for the loop.
RUNAWAY_CALL_CODE = "0x6001623fffe0526207ffff5b6001900380600b5700"
RUNAWAY_CALL_GAS = 50_000_000  # geth's default RPC gas cap (--rpc.gascap)
BACK_ZONES = ("I", "II")  # a node back in service: UP and in one of these zones
RECYCLE_REASON = "zone3"

Say = Callable[[str], None]


@dataclass(frozen=True)
class StackEndpoints:
    """Where the demo reaches a running stack."""

    gateway_url: str
    api_key: str  # an admin key: the steady load mints tokens
    manager_url: str
    provider_urls: tuple[str, ...]
    node_rpc_urls: dict[str, str]  # the pool nodes' RPC, for the direct overload


@dataclass(frozen=True)
class OverloadPlan:
    """How the demo runs: which node, how hard, how long."""

    node: str = "node-2"
    burn_loops: int = 16  # concurrent eth_call loops aimed at the node
    warmup_s: float = 20.0  # load before the overload
    timeout_s: float = 180.0  # from the overload's start to the node back in service
    tail_s: float = 5.0  # load after the node is back
    readers: int = 2  # the steady load's clients through the gateway
    writers: int = 1
    pause_s: float = 0.1
    mix_users: int = 0  # Locust users of the 5.1 mix beside the steady load (0: none)
    progress_s: float = 2.0  # between two progress lines


class StackNotRunningError(RuntimeError):
    """No stack answers where the demo looks for it."""


async def up_endpoints(port_base: int, providers: int) -> StackEndpoints:
    """The endpoints of the `ethgw up` of this state folder and settings, on `port_base`;
    raises StackNotRunningError when its gateway or its manager does not answer."""
    shape = Shape(nodes=known_nodes(), providers=providers)
    ports = ServicePorts.from_base(shape, port_base)
    gateway_url = f"http://127.0.0.1:{ports.gateway}"
    manager_url = f"http://127.0.0.1:{ManagerSettings().api_port}"
    key = await asyncio.to_thread(read_admin_key, default_state_dir())
    for url in (f"{gateway_url}/healthz", f"{manager_url}/healthz"):
        if not await _answers(url):
            raise StackNotRunningError(f"nothing answers at {url}: start the stack with `ethgw up`")
    if key is None:
        raise StackNotRunningError(f"no admin key under {default_state_dir()}")
    specs = pool_specs(ClusterSettings(nodes=shape.nodes))
    return StackEndpoints(
        gateway_url,
        key,
        manager_url,
        tuple(provider_urls(ports)),
        {spec.name: spec.rpc_url for spec in specs},
    )


async def _answers(url: str) -> bool:
    async with httpx.AsyncClient(timeout=3.0, trust_env=False) as http:
        try:
            return (await http.get(url)).status_code == 200
        except httpx.HTTPError:
            return False


# -- the runaway client -------------------------------------------------------------------------


@dataclass
class Burner:
    """Loops of runaway eth_calls (RUNAWAY_CALL_CODE) against one node's RPC, until stopped or
    until the node cuts their connections (its restart)."""

    url: str
    loops: int
    calls: int = 0
    errors: int = 0  # answers that were JSON-RPC errors (geth's eth_call time limit)
    cut: int = 0  # loops that ended because the node went away

    async def run(self, stop: asyncio.Event) -> None:
        limits = httpx.Limits(max_connections=self.loops)
        async with httpx.AsyncClient(timeout=60.0, limits=limits, trust_env=False) as http:
            await asyncio.gather(*(self._loop(http, stop) for _ in range(self.loops)))

    async def _loop(self, http: httpx.AsyncClient, stop: asyncio.Event) -> None:
        call = [{"data": RUNAWAY_CALL_CODE, "gas": hex(RUNAWAY_CALL_GAS)}, "latest"]
        while not stop.is_set():
            try:
                await rpc_call(http, self.url, "eth_call", call)
                self.calls += 1
            except RpcError:
                self.errors += 1  # the call ran into geth's limit: it burned all the same
            except NodeUnreachableError:
                self.cut += 1
                return


# -- what the manager says ------------------------------------------------------------------------


@dataclass
class ZoneWatch:
    """The manager's view of every node once a second, and its events, from `started` on."""

    manager_url: str
    started: float
    samples: list[ZoneSample] = field(default_factory=list)
    events: list[dict[str, Any]] = field(default_factory=list)
    bounds: tuple[float, float] | None = None  # the manager's (Dis_avemin, Dis_avemax)

    async def run(self, stop: asyncio.Event, interval_s: float = 1.0) -> None:
        async with httpx.AsyncClient(
            base_url=self.manager_url, timeout=2.0, trust_env=False, auth=signing_auth()
        ) as http:
            while not stop.is_set():
                with contextlib.suppress(httpx.HTTPError, ValueError, KeyError):
                    await self._read(http)
                with contextlib.suppress(TimeoutError):
                    await asyncio.wait_for(stop.wait(), interval_s)

    async def _read(self, http: httpx.AsyncClient) -> None:
        snapshot = (await http.get("/nodes")).json()
        self.bounds = (float(snapshot["dis_avemin"]), float(snapshot["dis_avemax"]))
        now = round(time.time() - self.started, 2)
        for node in snapshot["nodes"]:
            self.samples.append(
                ZoneSample(now, node["node_id"], str(node["zone"]), float(node["distance"]),
                           float(node["cpu"]), str(node["lifecycle"]), float(snapshot["lbh"]))
            )  # fmt: skip
        recent = (await http.get("/events")).json()["events"]
        self.events = [e for e in recent if e["time"] >= self.started]

    def latest(self) -> dict[str, ZoneSample]:
        """Each node's newest sample."""
        return {s.node: s for s in self.samples}

    def event_at(self, node: str, kind: str, after_s: float) -> float | None:
        """Seconds since `started` of the node's first event of `kind` after `after_s`."""
        for event in self.events:
            at = event["time"] - self.started
            if event["node"] == node and event["kind"] == kind and at >= after_s:
                return float(at)
        return None


def state_of(sample: ZoneSample) -> str:
    """The zone of a routable node; the life-cycle state of one out of routing."""
    return sample.zone if sample.lifecycle == "up" else sample.lifecycle


def occupancy(
    samples: Iterable[ZoneSample], start_s: float, end_s: float
) -> dict[str, Counter[str]]:
    """Per node, how many samples within [start_s, end_s) found it in each state."""
    found: dict[str, Counter[str]] = {}
    for sample in samples:
        if start_s <= sample.at < end_s:
            found.setdefault(sample.node, Counter())[state_of(sample)] += 1
    return dict(sorted(found.items()))


def timeline(samples: Iterable[ZoneSample], node: str) -> list[tuple[str, float, float]]:
    """The node's states as runs: (state, first sample's time, last sample's time)."""
    runs: list[tuple[str, float, float]] = []
    for sample in (s for s in samples if s.node == node):
        state = state_of(sample)
        if runs and runs[-1][0] == state:
            runs[-1] = (state, runs[-1][1], sample.at)
        else:
            runs.append((state, sample.at, sample.at))
    return runs


def first_zone3_s(samples: Iterable[ZoneSample], node: str, after_s: float) -> float | None:
    """When the manager first saw the node in zone III after `after_s`."""
    return next(
        (s.at for s in samples if s.node == node and s.at >= after_s and s.zone == "III"), None
    )


def back_in_service_s(samples: Iterable[ZoneSample], node: str, after_s: float) -> float | None:
    """The first sample after `after_s` with the node UP in zone I or II."""
    return next(
        (
            s.at
            for s in samples
            if s.node == node and s.at >= after_s and s.lifecycle == "up" and s.zone in BACK_ZONES
        ),
        None,
    )


# -- what the providers dispatched ----------------------------------------------------------------


async def dispatched(provider_urls: Sequence[str]) -> Counter[Placement]:
    """Tasks dispatched so far by every provider, by (node, zone, task class)."""
    total: Counter[Placement] = Counter()
    async with httpx.AsyncClient(timeout=5.0, trust_env=False) as http:
        for url in provider_urls:
            with contextlib.suppress(httpx.HTTPError, ValueError):
                page = (await http.get(f"{url}/metrics")).text
                total.update(dispatched_by_placement(page))
    return total


def by_class_and_zone(counts: Counter[Placement]) -> dict[str, Counter[str]]:
    """Per task class, how many tasks went to nodes in each zone."""
    found: dict[str, Counter[str]] = {}
    for (_, zone, task_class), count in counts.items():
        if count:
            found.setdefault(task_class, Counter())[zone] += count
    return dict(sorted(found.items()))


# -- the 5.1 mix, in Locust ----------------------------------------------------------------------


@contextlib.asynccontextmanager
async def mix_load(
    endpoints: StackEndpoints, users: int, run_time_s: float, folder: Path
) -> AsyncIterator[Path | None]:
    """Locust running the 5.1 mix with `users` users for at most `run_time_s`; yields the file
    its counts are rewritten in every second (None: no mix)."""
    if users <= 0:
        yield None
        return
    await asyncio.to_thread(folder.mkdir, parents=True, exist_ok=True)
    counts = folder / "mix-progress.json"
    await asyncio.to_thread(counts.unlink, missing_ok=True)
    args = [
        str(Path(sys.executable).with_name("locust")),
        "-f", str(REPO_ROOT / "loadtests" / "locustfile.py"),
        "--headless", "--only-summary", "--loglevel", "WARNING",
        "-u", str(users), "-r", str(max(5, users // 10)),
        "--host", endpoints.gateway_url,
        "--api-key", endpoints.api_key,
        "--progress-file", str(counts),
        "--run-time", f"{int(run_time_s)}s",
        "--stop-timeout", "5",
    ]  # fmt: skip
    env = {**os.environ, "PYTHONPATH": str(REPO_ROOT)}
    with (folder / "mix-locust.log").open("ab") as output:
        process = await asyncio.create_subprocess_exec(
            *args, cwd=REPO_ROOT, env=env, stdout=output, stderr=asyncio.subprocess.STDOUT
        )
        try:
            yield counts
        finally:
            if process.returncode is None:
                process.terminate()
                try:
                    await asyncio.wait_for(process.wait(), 15.0)
                except TimeoutError:
                    process.kill()
                    await process.wait()


def mix_counts(path: Path | None) -> dict[str, int]:
    """The mix's counted requests done and failed, and its set-up requests, so far."""
    if path is None:
        return {}
    try:
        counts = json.loads(path.read_text())
    except (FileNotFoundError, ValueError):
        return {"done": 0, "failed": 0, "setup": 0}
    return {key: int(counts.get(key, 0)) for key in ("done", "failed", "setup")}


# -- the run -------------------------------------------------------------------------------------


@dataclass
class OverloadReport:
    """What one demo run saw; times are seconds since the load started."""

    plan: OverloadPlan
    overload_at: float
    zone3_at: float | None
    draining_at: float | None
    restarting_at: float | None
    up_at: float | None
    back_at: float | None
    ended_at: float
    samples: list[ZoneSample]
    events: list[dict[str, Any]]
    calls: list[Call]
    dispatched_before: Counter[Placement]  # during the warm-up
    dispatched_during: Counter[Placement]  # from the overload to the end
    burner: Burner
    mix: dict[str, int]
    bounds: tuple[float, float] | None  # the manager's (Dis_avemin, Dis_avemax)

    @property
    def reached_zone3(self) -> bool:
        return self.zone3_at is not None

    @property
    def recycled(self) -> bool:
        return self.restarting_at is not None

    @property
    def came_back(self) -> bool:
        return self.back_at is not None

    @property
    def back_after_s(self) -> float | None:
        """From the overload's start to the node back in service."""
        return None if self.back_at is None else self.back_at - self.overload_at

    @property
    def ok(self) -> bool:
        return self.reached_zone3 and self.came_back

    def answered(self, kind: str) -> tuple[int, int]:
        """(succeeded, failed) of the steady load's calls of `kind` through the gateway; a
        write answered 202 (accepted, still running) is no failure."""
        calls = [c for c in self.calls if c.kind == kind]
        good = sum(c.ok or c.accepted for c in calls)
        return good, len(calls) - good


async def stage_overload(
    endpoints: StackEndpoints, plan: OverloadPlan, say: Say, folder: Path
) -> OverloadReport:
    """Run the demo against `endpoints`; `say` prints its progress lines."""
    node_url = endpoints.node_rpc_urls.get(plan.node)
    if node_url is None:
        raise ValueError(f"no pool node {plan.node!r} (known: {sorted(endpoints.node_rpc_urls)})")
    started = time.time()
    watch = ZoneWatch(endpoints.manager_url, started)
    load = SteadyLoad(
        f"{endpoints.gateway_url}/api/v1",
        endpoints.api_key,
        target="0x" + os.urandom(20).hex(),
        readers=plan.readers,
        writers=plan.writers,
        pause_s=plan.pause_s,
    )
    burner = Burner(node_url, plan.burn_loops)
    stop_watch, stop_load, stop_burn = asyncio.Event(), asyncio.Event(), asyncio.Event()
    at_start = await dispatched(endpoints.provider_urls)
    watching = asyncio.create_task(watch.run(stop_watch))
    run_time_s = plan.warmup_s + plan.timeout_s + plan.tail_s + 30.0
    async with mix_load(endpoints, plan.mix_users, run_time_s, folder) as mix_file:
        loading = asyncio.create_task(load.run(stop_load))
        burning: asyncio.Task[None] | None = None
        try:
            say(f"load: {plan.readers} readers, {plan.writers} writer through the gateway"
                + (f", the 5.1 mix with {plan.mix_users} users" if mix_file else "")
                + f"; overload of {plan.node} in {plan.warmup_s:.0f}s")  # fmt: skip
            await _watch_for(plan.warmup_s, lambda: False, watch, load, mix_file, plan, say)
            at_overload = await dispatched(endpoints.provider_urls)
            overload_at = time.time() - started
            say(f"overload: {plan.burn_loops} loops of heavy eth_call straight to {plan.node}")
            burning = asyncio.create_task(burner.run(stop_burn))

            def back() -> bool:
                restarted = watch.event_at(plan.node, "restarting", overload_at)
                return (
                    restarted is not None
                    and back_in_service_s(watch.samples, plan.node, restarted) is not None
                )

            await _watch_for(plan.timeout_s, back, watch, load, mix_file, plan, say)
            stop_burn.set()
            await _watch_for(plan.tail_s, lambda: False, watch, load, mix_file, plan, say)
        finally:
            stop_burn.set()
            stop_load.set()
            await loading
            if burning is not None:
                await burning
            stop_watch.set()
            await watching
        mix = mix_counts(mix_file)
    at_end = await dispatched(endpoints.provider_urls)
    return _report(plan, watch, load, burner, mix, overload_at, time.time() - started,
                   at_overload - at_start, at_end - at_overload)  # fmt: skip


async def _watch_for(
    seconds: float,
    done: Callable[[], bool],
    watch: ZoneWatch,
    load: SteadyLoad,
    mix_file: Path | None,
    plan: OverloadPlan,
    say: Say,
) -> None:
    """Print a progress line every `progress_s` for `seconds`, or until `done()`."""
    end = time.monotonic() + seconds
    while time.monotonic() < end and not done():
        await asyncio.sleep(min(plan.progress_s, max(0.0, end - time.monotonic())))
        say(progress_line(watch, load.calls, mix_counts(mix_file), time.time() - watch.started))


def progress_line(
    watch: ZoneWatch, calls: Sequence[Call], mix: dict[str, int], elapsed_s: float
) -> str:
    """t, each node's state and distance, the gateway's answers so far."""
    nodes = "  ".join(f"{s.node} {state_of(s)} d={s.distance:.3f}" for s in watch.latest().values())
    good = sum(c.ok or c.accepted for c in calls)
    gateway = f"gateway ok={good} failed={len(calls) - good}"
    extra = f"  mix done={mix['done']} failed={mix['failed']}" if mix else ""
    return f"t={elapsed_s:5.1f}s  {nodes}  {gateway}{extra}"


def _report(
    plan: OverloadPlan,
    watch: ZoneWatch,
    load: SteadyLoad,
    burner: Burner,
    mix: dict[str, int],
    overload_at: float,
    ended_at: float,
    before: Counter[Placement],
    during: Counter[Placement],
) -> OverloadReport:
    restarting = next(
        (
            e["time"] - watch.started
            for e in watch.events
            if e["node"] == plan.node
            and e["kind"] == "restarting"
            and e["reason"] == RECYCLE_REASON
            and e["time"] - watch.started >= overload_at
        ),
        None,
    )
    return OverloadReport(
        plan=plan,
        overload_at=overload_at,
        zone3_at=first_zone3_s(watch.samples, plan.node, overload_at),
        draining_at=watch.event_at(plan.node, "draining", overload_at),
        restarting_at=restarting,
        up_at=watch.event_at(plan.node, "up", overload_at),
        back_at=(
            None if restarting is None else back_in_service_s(watch.samples, plan.node, restarting)
        ),
        ended_at=ended_at,
        samples=list(watch.samples),
        events=list(watch.events),
        calls=list(load.calls),
        dispatched_before=+before,
        dispatched_during=+during,
        burner=burner,
        mix=mix,
        bounds=watch.bounds,
    )


# -- the report ----------------------------------------------------------------------------------


def _shares(counts: Counter[str]) -> str:
    total = sum(counts.values())
    return ", ".join(f"{state} {n / total:.0%}" for state, n in sorted(counts.items()))


def _at(seconds: float | None, origin: float) -> str:
    return "never" if seconds is None else f"t={seconds:.1f}s (+{seconds - origin:.1f}s)"


def report_lines(report: OverloadReport) -> list[str]:
    """The demo's closing report."""
    return [
        *_episode_lines(report),
        *_occupancy_lines(report),
        *_dispatch_lines(report),
        *_answer_lines(report),
        f"verdict: {verdict(report)}",
    ]


def verdict(report: OverloadReport) -> str:
    node = report.plan.node
    if not report.reached_zone3:
        return f"FAILED: {node} never reached zone III"
    if not report.came_back:
        return f"FAILED: {node} never came back in service"
    return "ok"


def _episode_lines(report: OverloadReport) -> list[str]:
    node, start, burner = report.plan.node, report.overload_at, report.burner
    recycled = "(recycled by the manager, reason zone3)" if report.recycled else "(not recycled)"
    bounds = (
        "unknown"
        if report.bounds is None
        else f"Dis_avemin={report.bounds[0]:.4f} Dis_avemax={report.bounds[1]:.4f}"
    )
    lines = [
        f"the manager's bounds: {bounds}",
        f"overload of {node} from t={start:.1f}s: {burner.calls} heavy eth_calls answered, "
        f"{burner.errors} stopped by geth's call time limit, {burner.cut} loops cut by the restart",
        f"  zone III seen    {_at(report.zone3_at, start)}",
        f"  draining         {_at(report.draining_at, start)}",
        f"  restarting       {_at(report.restarting_at, start)}  {recycled}",
        f"  up event         {_at(report.up_at, start)}",
        f"  back in service  {_at(report.back_at, start)}  (UP in zone I or II)",
    ]
    if report.back_after_s is not None:
        lines.append(f"time from overload to {node} back in service: {report.back_after_s:.1f}s")
    return lines


def _occupancy_lines(report: OverloadReport) -> list[str]:
    node, start = report.plan.node, report.overload_at
    end = report.back_at if report.back_at is not None else report.ended_at
    lines = ["zone occupancy per node (share of the manager's samples; out of routing: its state):"]
    for phase, (lo, hi) in (("load only", (0.0, start)), ("overload", (start, end))):
        for name, states in occupancy(report.samples, lo, hi).items():
            lines.append(f"  {phase:<9} {name:<7} {_shares(states)}")
    runs = timeline(report.samples, node)
    lines.append(f"{node} over time: " + ", ".join(f"{s} {a:.0f}-{b:.0f}s" for s, a, b in runs))
    return lines


def _dispatch_lines(report: OverloadReport) -> list[str]:
    lines = ["tasks dispatched per class, by the zone of the node they went to:"]
    phases = (("load only", report.dispatched_before), ("overload", report.dispatched_during))
    for phase, placements in phases:
        for task_class, zones in by_class_and_zone(placements).items():
            cells = ", ".join(f"{zone} {n}" for zone, n in sorted(zones.items()))
            lines.append(f"  {phase:<9} {task_class:<4} {cells}")
    per_node: Counter[str] = Counter()
    for (name, _, _), count in (report.dispatched_before + report.dispatched_during).items():
        per_node[name] += count
    lines.append(
        "tasks dispatched per node: " + ", ".join(f"{n} {c}" for n, c in sorted(per_node.items()))
    )
    return lines


def _answer_lines(report: OverloadReport) -> list[str]:
    reads, writes = report.answered("read"), report.answered("write")
    lines = [
        f"gateway: reads {reads[0]} succeeded, {reads[1]} failed; "
        f"writes {writes[0]} succeeded, {writes[1]} failed"
    ]
    if report.mix:
        mix = report.mix
        lines.append(
            f"5.1 mix: {mix['done']} requests, {mix['failed']} failed "
            f"({mix['setup']} set-up requests)"
        )
    return lines
