"""Choosing the node-bound scenario's allotment (`ethgw bench --find-allotment`).

The monolith runs the table 5.1 mix at a few user counts under each candidate allotment of its
one node, its users paced (a task every think time each, loadtests/pacing.py), so N users offer
N / think time requests a second. With a fixed request count, more users finish sooner while
the node keeps up with what they offer; once it is saturated, more users only queue. The user
count where that happens is the allotment's saturation point; the allotment chosen is the one
that saturates nearest the target (the issue's "about 600 users"). Closed-loop users (think
time 0) offer no more load as they grow, so with them every allotment saturates at the first
user count, and the report says that nothing can be chosen.
"""

from __future__ import annotations

import itertools
import math
from collections.abc import Mapping, Sequence

from loadtests.report import CellResult

TARGET_USERS = 600
FIND_USERS = (200, 400, 600, 800, 1000)  # the users of a --find-allotment run unless told
# More users that shorten the time to finish by less than this share: the node is saturated.
SATURATION_GAIN = 0.10

Curve = Sequence[tuple[int, float]]  # (users, time to finish s), an unfinished cell as inf


def saturation_users(curve: Curve) -> int | None:
    """The user count past which more users no longer shorten the time to finish by
    SATURATION_GAIN; None when every step up still does (not saturated in the range)."""
    points = sorted(curve)
    for (users, time), (_, next_time) in itertools.pairwise(points):
        if not next_time < time * (1 - SATURATION_GAIN):
            return users
    return None


def saturation_text(curve: Curve) -> str:
    """Where a curve saturates, as the report's last column says it."""
    point = saturation_users(curve)
    users = sorted(u for u, _ in curve)
    if point is None:
        return f"not by {users[-1]} users"
    if point == users[0]:
        return f"at or below {point} users (the first count)"
    return f"{point} users"


def known_points(curves: Mapping[float, Curve]) -> dict[float, int]:
    """The saturation points known to lie inside the users measured, by cores: a curve
    saturated at its first user count may saturate anywhere at or below it."""
    known = {}
    for cores, curve in curves.items():
        point = saturation_users(curve)
        if point is not None and point > min(users for users, _ in curve):
            known[cores] = point
    return known


def choose_cores(curves: Mapping[float, Curve], target: int = TARGET_USERS) -> float | None:
    """The candidate cores whose known saturation point is nearest `target` (on a tie, the
    larger allotment: the smaller saturates no later); None when no point is known."""
    known = known_points(curves)
    if not known:
        return None
    return min(known, key=lambda cores: (abs(known[cores] - target), -cores))


def verdict(curves: Mapping[float, Curve], paced: bool, target: int = TARGET_USERS) -> str:
    """The report's conclusion: the allotment chosen, or why none is."""
    chosen = choose_cores(curves, target)
    if chosen is not None:
        return (
            f"Chosen: {chosen:g} core per node: the monolith saturates at "
            f"{known_points(curves)[chosen]} users, the nearest to {target} users of the "
            "allotments tried."
        )
    if not curves:
        return "No allotment chosen: no monolith cell was measured."
    users = sorted({u for curve in curves.values() for u, _ in curve})
    points = {saturation_users(curve) for curve in curves.values()}
    if points == {None}:
        return (
            f"No allotment chosen: none saturates by {users[-1]} users; try smaller "
            "allotments, a shorter think time or more users."
        )
    if None not in points:  # every one at its first user count, or known_points had one
        hint = (
            "try larger allotments or a longer think time"
            if paced
            else "closed-loop users (no think time) offer no more load as they grow: "
            "pace them (--think-s)"
        )
        return (
            "No allotment chosen: every one saturates at the first user count, so none is "
            f"known to saturate near {target} users (each somewhere at or below {users[0]}); "
            f"{hint}."
        )
    return (
        f"No allotment chosen: none saturates inside {users[0]}-{users[-1]} users (each "
        "at or below the first count or not by the last); try allotments between them."
    )


def curves_of(results: Sequence[CellResult]) -> dict[float, list[tuple[int, float]]]:
    """The monolith's node-bound (users, time to finish) points by allotted cores."""
    curves: dict[float, list[tuple[int, float]]] = {}
    for result in _monolith_cells(results):
        time = result.duration_s if result.finished else math.inf
        curves.setdefault(result.cell.node_cores, []).append((result.cell.users, time))
    return curves


def allotment_report(results: Sequence[CellResult], target: int = TARGET_USERS) -> str:
    """The markdown of a --find-allotment run: each allotment's time to finish and req/s by
    users (against what the users offer, when paced), its saturation point, the choice."""
    cells = _monolith_cells(results)
    curves = curves_of(results)
    offered = {r.cell.users: r.cell.offered_rps for r in cells}
    users = sorted(offered)
    lines = [
        "| node cores | " + " | ".join(_users_heading(u, offered[u]) for u in users)
        + " | saturates at |",
        "|" + "---|" * (len(users) + 2),
    ]  # fmt: skip
    for cores in sorted(curves):
        by_users = {r.cell.users: r for r in cells if r.cell.node_cores == cores}
        figures = [_cell_text(by_users.get(u)) for u in users]
        lines.append(
            f"| {cores:g} | " + " | ".join(figures) + f" | {saturation_text(curves[cores])} |"
        )
    paced = any(r.cell.think_s for r in cells)
    return (
        "Time to finish and req/s of the monolith, every node confined; saturated where more "
        f"users shorten the time by less than {SATURATION_GAIN:.0%} (req/s stops growing).\n\n"
        + "\n".join(lines)
        + f"\n\n{verdict(curves, paced, target)}\n"
    )


def _monolith_cells(results: Sequence[CellResult]) -> list[CellResult]:
    return [r for r in results if r.cell.system == "monolith" and r.cell.node_cores]


def _users_heading(users: int, offered_rps: float | None) -> str:
    return f"{users} users" + (f" ({offered_rps:.0f} req/s offered)" if offered_rps else "")


def _cell_text(result: CellResult | None) -> str:
    if result is None:
        return "-"
    if not result.finished:
        return f"unfinished ({result.requests_done} of {result.cell.requests})"
    return f"{result.duration_s:.1f} s, {result.throughput_rps:.0f} req/s"
