"""Choosing the node-bound scenario's allotment (`ethgw bench --find-allotment`).

The monolith runs the table 5.1 mix at a few user counts under each candidate allotment of its
one node. With a fixed request count, more users finish sooner while the node has CPU to spare;
once it is saturated, more users only queue. The user count where that happens is the
allotment's saturation point; the allotment chosen is the one that saturates nearest the
target (the issue's "about 600 users").
"""

from __future__ import annotations

import itertools
import math
from collections.abc import Mapping, Sequence

from loadtests.report import CellResult

TARGET_USERS = 600
FIND_USERS = (200, 400, 600, 800)  # the users of a --find-allotment run unless told
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


def choose_cores(curves: Mapping[float, Curve], target: int = TARGET_USERS) -> float | None:
    """The candidate cores whose saturation point is nearest `target` (on a tie, the larger
    allotment: the smaller saturates no later); None when none saturates in the range."""
    saturating = {
        cores: users
        for cores, curve in curves.items()
        if (users := saturation_users(curve)) is not None
    }
    if not saturating:
        return None
    return min(saturating, key=lambda cores: (abs(saturating[cores] - target), -cores))


def curves_of(results: Sequence[CellResult]) -> dict[float, list[tuple[int, float]]]:
    """The monolith's node-bound (users, time to finish) points by allotted cores."""
    curves: dict[float, list[tuple[int, float]]] = {}
    for result in results:
        cell = result.cell
        if cell.system != "monolith" or not cell.node_cores:
            continue
        time = result.duration_s if result.finished else math.inf
        curves.setdefault(cell.node_cores, []).append((cell.users, time))
    return curves


def allotment_report(results: Sequence[CellResult], target: int = TARGET_USERS) -> str:
    """The markdown of a --find-allotment run: the curves, each saturation point, the choice."""
    curves = curves_of(results)
    users = sorted({u for curve in curves.values() for u, _ in curve})
    lines = [
        "| node cores | " + " | ".join(f"{u} users" for u in users) + " | saturates at |",
        "|" + "---|" * (len(users) + 2),
    ]
    for cores in sorted(curves):
        times = dict(curves[cores])
        figures = [_time_text(times.get(u)) for u in users]
        point = saturation_users(curves[cores])
        saturates = f"{point} users" if point is not None else f"not by {max(users)} users"
        lines.append(f"| {cores:g} | " + " | ".join(figures) + f" | {saturates} |")
    chosen = choose_cores(curves, target)
    verdict = (
        f"Chosen: {chosen:g} core per node (saturates nearest {target} users)."
        if chosen is not None
        else f"No candidate saturates in {users[0] if users else 0}-{max(users, default=0)} "
        "users: try smaller allotments."
    )
    return (
        "Time to finish (s) of the monolith, every node confined; saturated where more "
        f"users shorten it by less than {SATURATION_GAIN:.0%}.\n\n"
        + "\n".join(lines)
        + f"\n\n{verdict}\n"
    )


def _time_text(time: float | None) -> str:
    if time is None:
        return "-"
    return "unfinished" if math.isinf(time) else f"{time:.1f}"
