"""Calibration of the zone bounds from samples (lbh-spec.md section 2, thesis eq. 3.2-3.6).

Dis_avemin is the mean distance of the nodes sampled idle (set U1, eq. 3.3); Dis_avemax the mean
distance of the nodes sampled under a saturating load (set U2, eq. 3.5). A calibration travels
as JSON text; reading and writing the file is the caller's job, so this module stays free of I/O.
"""

from __future__ import annotations

import json
import math
from collections.abc import Iterable, Mapping
from dataclasses import dataclass
from typing import Any

import numpy as np

from balancer.tasks import TaskClass

MAX_DISTANCE = math.sqrt(2.0)
"""The largest distance in the unit state plane: a node at (1, 1)."""

DEFAULT_DIS_AVEMAX = 1.0
"""Dis_avemax used by `calibrate` when no saturated samples exist (section 2's configured
default); 1.0 is, for example, a node at full CPU with no memory pressure."""

FORMAT_VERSION = 1
"""Version written into, and required of, calibration JSON."""


def validate_bounds(dis_avemin: float, dis_avemax: float) -> None:
    """Raise ValueError, naming the field, unless 0 <= dis_avemin < dis_avemax <= sqrt(2)."""
    for name, value in (("dis_avemin", dis_avemin), ("dis_avemax", dis_avemax)):
        if not math.isfinite(value):
            raise ValueError(f"{name} must be a finite number, got {value}")
    if dis_avemin < 0.0:
        raise ValueError(f"dis_avemin must be >= 0, got {dis_avemin}")
    if dis_avemax > MAX_DISTANCE:
        raise ValueError(f"dis_avemax must be <= sqrt(2) ({MAX_DISTANCE:.6f}), got {dis_avemax}")
    if not dis_avemin < dis_avemax:
        raise ValueError(
            f"dis_avemin must be < dis_avemax, got dis_avemin={dis_avemin}, dis_avemax={dis_avemax}"
        )


@dataclass(frozen=True, slots=True)
class Calibration:
    """The two measured bounds; constructing one validates them (section 2)."""

    dis_avemin: float
    dis_avemax: float

    def __post_init__(self) -> None:
        object.__setattr__(self, "dis_avemin", float(self.dis_avemin))
        object.__setattr__(self, "dis_avemax", float(self.dis_avemax))
        validate_bounds(self.dis_avemin, self.dis_avemax)

    @property
    def dis_ave(self) -> float:
        """The boundary between zones I and II (eq. 3.6)."""
        return (self.dis_avemin + self.dis_avemax) / 2.0

    def to_dict(self) -> dict[str, Any]:
        """Plain data for JSON."""
        return {
            "version": FORMAT_VERSION,
            "dis_avemin": self.dis_avemin,
            "dis_avemax": self.dis_avemax,
        }

    @classmethod
    def from_dict(cls, data: Mapping[str, Any]) -> Calibration:
        """Inverse of `to_dict`; ValueError for a wrong version, a missing or invalid field."""
        version = data.get("version")
        if version != FORMAT_VERSION:
            raise ValueError(f"calibration version must be {FORMAT_VERSION}, got {version!r}")
        try:
            low, high = float(data["dis_avemin"]), float(data["dis_avemax"])
        except KeyError as missing:
            raise ValueError(f"calibration lacks the field {missing.args[0]!r}") from None
        except (TypeError, ValueError):
            raise ValueError("calibration bounds must be numbers") from None
        return cls(low, high)

    def to_json(self) -> str:
        """The calibration file's text."""
        return json.dumps(self.to_dict(), indent=2) + "\n"

    @classmethod
    def from_json(cls, text: str) -> Calibration:
        """Parse and validate a calibration file's text; ValueError if it is not one."""
        try:
            data = json.loads(text)
        except json.JSONDecodeError as error:
            raise ValueError(f"calibration is not valid JSON: {error}") from None
        if not isinstance(data, dict):
            raise ValueError("calibration JSON must be an object")
        return cls.from_dict(data)


TASK_MEMORY_FIELD = "task_memory_mb"
"""The calibration JSON's field of each task class's memory need in MB (lbh-spec.md section 6)."""


def task_memory_from_json(text: str) -> dict[TaskClass, float] | None:
    """The memory need per task class a calibration file holds, None when it holds none.

    ValueError, naming the class, for an unknown class or a figure that is not a finite
    number >= 0; a class the file leaves out needs 0 MB (the scheduler's rule).
    """
    try:
        data = json.loads(text)
    except json.JSONDecodeError as error:
        raise ValueError(f"calibration is not valid JSON: {error}") from None
    figures = data.get(TASK_MEMORY_FIELD) if isinstance(data, dict) else None
    if figures is None:
        return None
    if not isinstance(figures, dict):
        raise ValueError(f"{TASK_MEMORY_FIELD} must be an object of class name to MB")
    table: dict[TaskClass, float] = {}
    for name, value in figures.items():
        try:
            cls = TaskClass(name)
        except ValueError:
            raise ValueError(f"{TASK_MEMORY_FIELD}: unknown task class {name!r}") from None
        if isinstance(value, bool) or not isinstance(value, int | float):
            raise ValueError(f"{TASK_MEMORY_FIELD}[{name}] must be a number, got {value!r}")
        if not (math.isfinite(value) and value >= 0.0):
            raise ValueError(f"{TASK_MEMORY_FIELD}[{name}] must be finite and >= 0, got {value}")
        table[cls] = float(value)
    return table


def mean_distance(samples: Iterable[tuple[float, float]]) -> float:
    """Mean of sqrt(m^2 + c^2) over (memory, cpu) samples, ratios within [0, 1] (eq. 3.3, 3.5)."""
    points = np.asarray(list(samples), dtype=np.float64)
    if points.size == 0:
        raise ValueError("need at least one (memory, cpu) sample")
    if points.ndim != 2 or points.shape[1] != 2:
        raise ValueError("samples must be (memory, cpu) pairs")
    if not np.all((points >= 0.0) & (points <= 1.0)):  # NaN fails too
        raise ValueError("sample ratios must be within [0, 1]")
    distances = np.sqrt(points[:, 0] ** 2 + points[:, 1] ** 2)
    return math.fsum(distances.tolist()) / len(distances)


def calibrate(
    idle: Iterable[tuple[float, float]],
    saturated: Iterable[tuple[float, float]] | None = None,
    *,
    default_dis_avemax: float = DEFAULT_DIS_AVEMAX,
) -> Calibration:
    """Bounds from idle samples (U1) and saturated samples (U2), validated.

    Without saturated samples, `default_dis_avemax` (default DEFAULT_DIS_AVEMAX = 1.0) is used.
    Raises ValueError if the result breaks 0 <= Dis_avemin < Dis_avemax <= sqrt(2), for example
    when the "saturated" samples were not busier than the idle ones.
    """
    high = default_dis_avemax if saturated is None else mean_distance(saturated)
    return Calibration(mean_distance(idle), high)
