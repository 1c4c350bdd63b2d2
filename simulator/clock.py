"""Simulated time: a linear map from a monotonic wall clock to an accelerated UTC clock."""

from __future__ import annotations

from dataclasses import dataclass
from datetime import datetime, timedelta


@dataclass(frozen=True, slots=True)
class SimClock:
    """Map monotonic wall seconds to simulated time running `speed` times faster from `start`."""

    start: datetime
    speed: float
    wall_start: float

    def __post_init__(self) -> None:
        """Reject naive start times and non-positive speeds."""
        if self.start.tzinfo is None:
            raise ValueError("start must be timezone-aware")
        if not self.speed > 0:
            raise ValueError(f"speed must be > 0, got {self.speed}")

    def now(self, wall: float) -> datetime:
        """Return the simulated time at monotonic wall time `wall`."""
        return self.start + timedelta(seconds=(wall - self.wall_start) * self.speed)

    def wall_at(self, sim: datetime) -> float:
        """Return the monotonic wall time at which the simulated clock reaches `sim`."""
        return self.wall_start + (sim - self.start).total_seconds() / self.speed
