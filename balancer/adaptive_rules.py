"""The rules of `lbh_adaptive`, each a pure function of plain values.

`balancer/adaptive.py` composes them into a strategy. Each rule answers one of the costs the
simulator found in spec-literal LBH (docs/balancer.md, "Where LBH loses"): memory packed to the
last megabyte, one-second-old samples, reads sent to the busiest zone, a backlog dumped after a
pause, a safety valve that ignores memory, and the memory-creep deadlock; and, found live,
writes starved by reads when nodes run out of room.
"""

from __future__ import annotations

import math
from collections.abc import Callable, Mapping, Sequence
from dataclasses import dataclass, replace

from balancer.state import Zone


def usable_free_mb(free_mb: float | None, headroom_mb: float) -> float | None:
    """The free memory to pack against: the caller's figure less `headroom_mb`.

    The headroom absorbs what the nodes leak between two samples and keeps them below the GC
    pressure of a full budget. An unknown figure (None) stays unknown: it never blocks a task.
    """
    return None if free_mb is None else free_mb - headroom_mb


def live_distance(
    sampled_d: float, inflight_now: int, inflight_at_sample: int, delta: float
) -> float:
    """d now: the sampled d moved by `delta` per task started (or finished) since the sample.

    A sample is up to one interval old; the in-flight count is live. Never below 0.
    """
    return max(0.0, sampled_d + delta * (inflight_now - inflight_at_sample))


@dataclass(frozen=True, slots=True)
class DistanceSample:
    """One sample of a node as the delta rule reads it: its sampled d and the mean count of
    tasks it had in flight over the interval the sample covers."""

    inflight: float
    distance: float


def learnt_delta(
    samples: Sequence[DistanceSample], fallback: float, low: float, high: float, min_spread: float
) -> float:
    """The d a node gains per task in flight, learnt from its recent `samples`: the
    least-squares slope of the sampled d against the in-flight count, clamped to [low, high].

    The spec's constant delta (0.05) is right only where d is mostly the node's own CPU. Where
    it is mostly memory, or the CPU figure is the whole machine's, d moves far less per task,
    and a constant 0.05 makes `room` refuse nodes that have capacity. With in-flight counts
    spread over less than `min_spread` tasks (max - min), or no samples, the slope is noise
    and the answer is `fallback` (the configured delta, as it is).
    """
    counts = [s.inflight for s in samples]
    if not counts or max(counts) - min(counts) < min_spread:
        return fallback
    mean = math.fsum(counts) / len(counts)
    # sum((x - mean) * y) is the covariance sum without y's mean: each d then moves the
    # slope one way only (up when its count is above the mean), exactly, as fsum rounds once.
    spread = math.fsum((x - mean) ** 2 for x in counts)
    if spread == 0.0:  # every count equal (a min_spread of 0 lets them through)
        return fallback
    slope = math.fsum((s.inflight - mean) * s.distance for s in samples) / spread
    return min(high, max(low, slope))


@dataclass(frozen=True, slots=True)
class SampleWindow:
    """A node's last samples for `learnt_delta`, and the in-flight time since the last one.

    distance: d of the last sample seen (None: none yet).
    inflight_s, seconds: in-flight count x seconds, and seconds, since that sample.
    count, at: the in-flight count and the time of the last round.
    delta: the learnt delta of `samples`, fitted once per new sample by the caller (None: not
        fitted since the last sample; see `fitted`).
    """

    samples: tuple[DistanceSample, ...] = ()
    distance: float | None = None
    inflight_s: float = 0.0
    seconds: float = 0.0
    count: int = 0
    at: float | None = None
    delta: float | None = None


def observe_round(
    window: SampleWindow, distance: float, inflight: int, now: float, keep: int
) -> SampleWindow:
    """`window` after a round at `now` that reads the sampled d `distance` with `inflight`
    tasks in flight; it keeps the last `keep` samples.

    The time since the last round counts with the in-flight count of that round (what the
    node held meanwhile). A d that differs from the last one seen is a new sample: it closes
    the interval and is paired with the mean in-flight count over it, the interval its CPU
    figure covers. The count at the instant of the sample would be noisier, and noise in the
    counts flattens a least-squares slope (the learnt delta would be too low). A new sample
    clears the window's fitted delta; rounds between samples keep it.
    """
    elapsed = 0.0 if window.at is None else max(0.0, now - window.at)
    inflight_s = window.inflight_s + window.count * elapsed
    seconds = window.seconds + elapsed
    if window.distance is not None and distance != window.distance and seconds > 0.0:
        sample = DistanceSample(inflight_s / seconds, distance)
        return SampleWindow((*window.samples, sample)[-keep:], distance, 0.0, 0.0, inflight, now)
    if window.distance is not None and distance != window.distance:
        return SampleWindow(window.samples, distance, 0.0, 0.0, inflight, now, window.delta)
    return SampleWindow(window.samples, distance, inflight_s, seconds, inflight, now, window.delta)


def fitted(window: SampleWindow, fit: Callable[[Sequence[DistanceSample]], float]) -> SampleWindow:
    """`window` with its delta fitted by `fit` (a `learnt_delta` with the settings bound) if
    it has none yet, else as it is.

    The slope changes only when a sample comes in (about once a second), while rounds come
    every few milliseconds: fitting once per sample and keeping the result in the window spares
    the hot path a least-squares fit per node per round.
    """
    if window.delta is not None:
        return window
    return replace(window, delta=fit(window.samples))


def calibrated_floor(dis_avemin: float, dis_avemax: float, delta: float, min_inflight: int) -> int:
    """Tasks any node may hold whatever its sampled d says: as many as take a node's own d from
    the idle Dis_avemin to Dis_avemax at `delta` per task, and at least `min_inflight`.

    The calibration measured Dis_avemax on nodes holding a saturating load, and the spec's
    delta is what one task adds to a node's own d: a node holding fewer tasks than this count
    is not saturated by its own work, whatever its sample says. Its sample can say so early for
    two reasons: a CPU ratio saturates at 1 with a few calls in flight, and on a machine whose
    CPU figure is the whole machine's, the other nodes' work lifts every node's d together
    (docs/balancer.md, "loaded-160"). With a delta of 0 there is no count: `min_inflight`.
    """
    span = dis_avemax - dis_avemin
    if delta <= 0.0 or span <= 0.0:
        return min_inflight
    return max(min_inflight, math.floor(min(span / delta, _MAX_FLOOR)))


_MAX_FLOOR = float(1 << 30)
"""Past any count of tasks a round can hold: a tiny delta's floor is capped here."""


def room(
    live_d: float, dis_avemax: float, delta: float, inflight: int, floor: int, limit: int
) -> int:
    """Tasks a node may still take: as many as keep its predicted d within Dis_avemax (out of
    zone III), and in any case enough to have `floor` tasks in flight.

    This is the admission control that replaces the cluster-wide pause: a loaded node stops
    taking work, the others go on. The floor is there because d is a sample up to a second old
    and its CPU ratio saturates at 1: a node with a few calls in flight serves them at full
    speed whatever its last sample said. At most `limit` (the round's task count).
    """
    by_floor = max(0, floor - inflight)
    if delta == 0.0:
        by_distance = limit if live_d <= dis_avemax else 0
    else:
        by_distance = max(0, math.floor((dis_avemax - live_d) / delta))
    return min(limit, max(by_distance, by_floor))


def ramp_limit(since_resume_s: float | None, start: int, per_s: float) -> int | None:
    """The in-flight ceiling per node while a backlog is released after a pause.

    `start` tasks at the resume, `per_s` more each second after it, so the backlog goes out as
    the nodes show they can take it instead of all at once. None (no ceiling) with no pause
    behind.
    """
    if since_resume_s is None:
        return None
    return start + math.floor(per_s * max(0.0, since_resume_s))


def fits(free_left_mb: float | None, need_mb: float) -> bool:
    """A node with `free_left_mb` (None: unknown) has room for a task needing `need_mb`."""
    return free_left_mb is None or free_left_mb >= need_mb


@dataclass(frozen=True, slots=True)
class NodeLoad:
    """A candidate node as a round sees it before one task is placed.

    inflight: live count, this round's tasks included.
    d_hat: live d plus delta per task this round gave it.
    room_left: tasks it may still take this round; free_left_mb: usable memory left (None:
    unknown).
    service_s: its recent service time, an EWMA of what its tasks took (None: no data yet).
    """

    node_id: str
    inflight: int
    d_hat: float
    room_left: int
    free_left_mb: float | None
    service_s: float | None = None


DEFAULT_SERVICE_DECAY_S = 10.0
"""Time constant of the service-time EWMA (Finagle's default): a figure this old weighs 1/e."""


def decayed_mean(
    previous: float | None, sample_s: float, elapsed_s: float, decay_s: float
) -> float:
    """The peak EWMA of service times after one more sample, `elapsed_s` after the last one.

    As in peak-EWMA balancers (Finagle, Linkerd): a sample above the figure replaces it, so a
    node that slows down is seen at once; one below it pulls it down with the weight
    1 - exp(-elapsed_s / decay_s), so a node's figure follows its last `decay_s` seconds
    however many tasks it served. No figure yet (None) or `decay_s` 0: the sample.
    """
    if previous is None or decay_s <= 0.0 or sample_s > previous:
        return sample_s
    keep = math.exp(-max(0.0, elapsed_s) / decay_s)
    return keep * previous + (1.0 - keep) * sample_s


def aged_service(
    figures: Mapping[str, float], seen_at: Mapping[str, float], now: float, decay_s: float
) -> dict[str, float]:
    """The figures as of `now`: each drifts toward the cheapest one with the time since its
    last sample (weight exp(-age / decay_s) on what it has above the cheapest).

    A node judged slow gets few tasks, so its figure is rarely refreshed: without this, one
    slow spell (a noisy neighbour, a node about to be recycled) would keep it shunned long
    after it passed. Peak-EWMA balancers decay their figure on read for the same reason.
    """
    if not figures:
        return {}
    cheapest = min(figures.values())
    out = {}
    for node, figure in figures.items():
        age = max(0.0, now - seen_at.get(node, now))
        keep = math.exp(-age / decay_s) if decay_s > 0.0 else 0.0
        out[node] = cheapest + (figure - cheapest) * keep
    return out


def service_estimates(service_s: Sequence[float | None]) -> list[float]:
    """The service time to cost each node with: its own figure, or for a node with no data
    yet the cheapest known one (so a new node is tried, not shunned); 1.0 for all when no node
    has data (the cost is then the in-flight rule)."""
    known = [s for s in service_s if s is not None]
    if not known:
        return [1.0] * len(service_s)
    cheapest = min(known)
    return [cheapest if s is None else s for s in service_s]


def latency_cost(inflight: int, service_s: float) -> float:
    """What a new task is expected to wait on a node: (in flight + 1) x its service time."""
    return (inflight + 1) * service_s


def overdue_first(
    order: Sequence[int], ages: Sequence[float], now: float | None, overdue_s: float
) -> list[int]:
    """`order` (LBH's dispatch order: reads first) with the overdue tasks moved to the front,
    oldest first: those queued at least `overdue_s` before `now` (None: no clock, `order`).

    Reads first costs nothing while nodes have room. Once they run out, it makes writes wait
    for as long as reads keep coming, and the writes' wait becomes everyone's p99. An
    account's writes are queued in the order they came, so an overdue write has no younger
    write of its account ahead of it, and the others keep LBH's account order.
    """
    if now is None:
        return list(order)
    late = sorted((i for i in order if now - ages[i] >= overdue_s), key=ages.__getitem__)
    if not late:
        return list(order)
    moved = set(late)
    return late + [i for i in order if i not in moved]


def choose(
    loads: Sequence[NodeLoad], need_mb: float, is_write: bool, dis_ave: float, dis_avemax: float
) -> int | None:
    """Index in `loads` of the node for one task, or None if none may take it.

    Balancing is on the expected wait, across zones, as peak-EWMA balancers do: the lowest
    `latency_cost` (live in flight + 1, times the node's recent service time), then the fewest
    in flight, then the lower id (a d up to a second old is a worse tie-breaker than a fixed
    order, the simulator says). With equal service times, or none known, that is
    least-connections. Zones still keep writes off loaded nodes: a write goes to a node in
    predicted zone III (d_hat > Dis_avemax) only if no other node may take it, and between
    nodes of as low a cost, to zone I (d_hat <= Dis_ave) first.
    """
    eligible = [i for i, n in enumerate(loads) if n.room_left > 0 and fits(n.free_left_mb, need_mb)]
    if not eligible:
        return None
    service = service_estimates([n.service_s for n in loads])

    def cost(i: int) -> tuple[float, int]:
        return latency_cost(loads[i].inflight, service[i]), loads[i].inflight

    if not is_write:
        return min(eligible, key=lambda i: (cost(i), loads[i].node_id))
    eligible = [i for i in eligible if loads[i].d_hat <= dis_avemax] or eligible
    return min(eligible, key=lambda i: (cost(i), loads[i].d_hat > dis_ave, loads[i].node_id))


def valve_choice(
    loads: Sequence[NodeLoad], need_mb: float, given: Mapping[str, int], per_node: int
) -> int | None:
    """The safety valve's node for one read: memory room left, fewer than `per_node` valve
    reads this round, then the fewest in flight (ties: lower id). None if no node qualifies.

    Unlike the spec's valve it respects memory and spreads over nodes, so a long pause cannot
    pile every waiting read on one node.
    """
    eligible = [
        i
        for i, n in enumerate(loads)
        if fits(n.free_left_mb, need_mb) and given.get(n.node_id, 0) < per_node
    ]
    if not eligible:
        return None
    return min(eligible, key=lambda i: (loads[i].inflight, loads[i].node_id))


def since_while(previous: float | None, condition: bool, now: float) -> float | None:
    """When `condition` started holding without a break (None while it does not hold)."""
    if not condition:
        return None
    return now if previous is None else previous


def lasted(since: float | None, now: float, limit_s: float) -> bool:
    """Whether something that started at `since` (None: not happening) has lasted `limit_s`."""
    return since is not None and now - since >= limit_s


def memory_bound(lbh: float, memory_lbh: float) -> bool:
    """LBH is below 0 and memory alone keeps it there: LBH with every CPU ratio at 0
    (sum of Dis_ave - m) is below 0 too.

    This is the memory-creep deadlock: no pause or rest lowers leaked memory, only a restart
    does. Load alone (a high CPU ratio) does not count: it passes once the work is done.
    """
    return lbh < 0.0 and memory_lbh < 0.0


def deadlock_exit(
    zones: Mapping[str, Zone],
    distances: Mapping[str, float],
    stuck_since: float | None,
    now: float,
    max_pause_s: float,
) -> str | None:
    """The node to recycle when LBH has been held below 0 by memory (`stuck_since`, see
    `memory_bound`) for `max_pause_s`, with no zone III node.

    With no node in zone III the spec's recycling never starts, and leaked memory never
    leaves by itself. The highest-d routable node goes (ties: lowest id), never the last
    routable one. None when the rule does not apply.
    """
    routable = [node for node, zone in zones.items() if zone is not Zone.DOWN]
    if len(routable) < 2 or any(zones[node] is Zone.III for node in routable):
        return None
    if not lasted(stuck_since, now, max_pause_s):
        return None
    return min(routable, key=lambda node: (-distances[node], node))
