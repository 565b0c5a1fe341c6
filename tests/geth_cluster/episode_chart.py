"""Records the manager's view of the nodes during a recycling episode and draws it: the
recycled node's distance over time, the Dis_ave and Dis_avemax lines, the event marks.

The recycling-under-load test writes the chart and the event log under results/ (git-ignored);
docs/img/recycling-episode.png is one such chart, copied by hand.
"""

from __future__ import annotations

import asyncio
import contextlib
import time
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import httpx
import matplotlib

matplotlib.use("Agg")  # no display: files only

import matplotlib.pyplot as plt  # after the backend is chosen

from ethgw_wire.request_auth import signing_auth
from service_kit.paths import REPO_ROOT

RESULTS_DIR = REPO_ROOT / "results"
EVENT_COLOURS = {
    "draining": "tab:orange",
    "restarting": "tab:red",
    "syncing": "tab:purple",
    "up": "tab:green",
    "cordoned": "tab:gray",
    "uncordoned": "tab:gray",
    "restart_failed": "black",
}


@dataclass
class NodeSample:
    at: float  # wall clock (time.time), as the events carry
    node_id: str
    distance: float
    lifecycle: str
    zone: str


@dataclass
class Recording:
    """What GET /nodes said every poll: per node samples and the bounds."""

    samples: list[NodeSample] = field(default_factory=list)
    dis_ave: float = 0.0
    dis_avemax: float = 0.0

    def of(self, node_id: str) -> list[NodeSample]:
        return [s for s in self.samples if s.node_id == node_id]

    def latest(self, node_id: str) -> NodeSample | None:
        mine = self.of(node_id)
        return mine[-1] if mine else None


async def record_nodes(
    manager_url: str, recording: Recording, stop: asyncio.Event, every_s: float = 0.25
) -> None:
    """Poll the manager's GET /nodes until `stop` is set."""
    async with httpx.AsyncClient(base_url=manager_url, timeout=5.0, auth=signing_auth()) as client:
        while not stop.is_set():
            try:
                snapshot: dict[str, Any] = (await client.get("/nodes")).json()
            # ValueError: a non-JSON answer (a manager restarting) must not end the recorder,
            # whose failure would then replace the episode's own result.
            except (httpx.HTTPError, ValueError):
                snapshot = {}
            now = time.time()
            recording.dis_ave = snapshot.get("dis_ave", recording.dis_ave)
            recording.dis_avemax = snapshot.get("dis_avemax", recording.dis_avemax)
            for node in snapshot.get("nodes", []):
                recording.samples.append(
                    NodeSample(
                        now, node["node_id"], node["distance"], node["lifecycle"], node["zone"]
                    )
                )
            with contextlib.suppress(TimeoutError):
                await asyncio.wait_for(stop.wait(), every_s)


def event_log_lines(events: list[dict[str, Any]], origin: float) -> list[str]:
    """One line per event: seconds since `origin`, node, kind, reason, detail."""
    return [
        f"t={e['time'] - origin:6.2f}s node={e['node']} kind={e['kind']} "
        f"reason={e['reason']} {e['detail']}"
        for e in events
    ]


def draw_episode(
    recording: Recording,
    events: list[dict[str, Any]],
    node_id: str,
    origin: float,
    path: Path,
    title: str,
) -> None:
    """The node's distance over time (others fainter), the two bounds, the event marks."""
    figure, axes = plt.subplots(figsize=(9, 4.2), dpi=100)
    node_ids = sorted({s.node_id for s in recording.samples})
    for other in node_ids:
        mine = recording.of(other)
        axes.plot(
            [s.at - origin for s in mine],
            [s.distance for s in mine],
            label=f"{other} d",
            linewidth=2.0 if other == node_id else 1.0,
            alpha=1.0 if other == node_id else 0.5,
        )
    axes.axhline(recording.dis_avemax, color="tab:red", linestyle="--", linewidth=1)
    axes.axhline(recording.dis_ave, color="tab:blue", linestyle="--", linewidth=1)
    right = max((s.at - origin for s in recording.samples), default=1.0)
    axes.text(right, recording.dis_avemax, " Dis_avemax", va="bottom", ha="right", fontsize=8)
    axes.text(right, recording.dis_ave, " Dis_ave", va="bottom", ha="right", fontsize=8)
    top = max([recording.dis_avemax, *(s.distance for s in recording.samples)]) * 1.15
    steps = [e for e in events if e["node"] == node_id]
    kinds = [e["kind"] for e in steps]
    if "draining" in kinds and "up" in kinds:
        axes.axvspan(
            steps[kinds.index("draining")]["time"] - origin,
            steps[kinds.index("up")]["time"] - origin,
            color="tab:gray",
            alpha=0.12,
            label=f"{node_id} out of routing",
        )
    for event in events:
        if event["node"] != node_id:
            continue
        at = event["time"] - origin
        colour = EVENT_COLOURS.get(event["kind"], "black")
        axes.axvline(at, color=colour, linewidth=1, alpha=0.8)
        axes.text(
            at, top * 0.98, f"{event['kind']} ", rotation=90, va="top", ha="right", fontsize=8
        )
    axes.set_ylim(0, top)
    axes.set_xlabel("seconds since the load started")
    axes.set_ylabel("distance d = sqrt(memory² + cpu²)")
    axes.set_title(title, fontsize=10)
    axes.legend(loc="upper left", fontsize=8)
    axes.grid(alpha=0.3)
    figure.tight_layout()
    path.parent.mkdir(parents=True, exist_ok=True)
    figure.savefig(path)
    plt.close(figure)
