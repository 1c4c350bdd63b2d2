"""Faults for developers: drop, duplicate, reorder, delay, corrupt, clock skew, reconnect bursts.

Pure and reproducible: every decision is a counter-based hash of (seed, step, position), so
the same seed, scenario and duration give the same faulty stream byte for byte.
Retained statuses are state, not traffic: faults never touch them.
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass, field
from typing import Final

import numpy as np
from numpy.typing import NDArray

from simulator import hashing
from simulator.engine import Out

_CH_FAULT: Final = 401
_CH_SKEW: Final = 402
_CH_BURST: Final = 403
MAX_DELAY_STEPS: Final = 4
SKEW_RANGE_S: Final = (90.0, 900.0)
_CORRUPTIONS: Final = ("truncate", "not_json", "bad_number", "wrong_meter")


@dataclass(frozen=True, slots=True)
class FaultRates:
    """Per-message probabilities (and the share of meters with skewed clocks)."""

    drop: float = 0.0
    duplicate: float = 0.0
    reorder: float = 0.0
    delay: float = 0.0
    corrupt: float = 0.0
    clock_skew: float = 0.0
    reconnect: float = 0.0  # per interval: a burst of reconnects

    def __post_init__(self) -> None:
        """Reject rates outside [0, 1]."""
        for name in ("drop", "duplicate", "reorder", "delay", "corrupt", "clock_skew", "reconnect"):
            value = getattr(self, name)
            if not 0.0 <= value <= 1.0:
                raise ValueError(f"{name} rate must be between 0 and 1, got {value}")

    @property
    def any(self) -> bool:
        """Return whether any fault is switched on."""
        return any(
            (self.drop, self.duplicate, self.reorder, self.delay, self.corrupt, self.reconnect)
        )


@dataclass(slots=True)
class FaultStats:
    """How many messages each fault touched."""

    dropped: int = 0
    duplicated: int = 0
    reordered: int = 0
    delayed: int = 0
    corrupted: int = 0
    bursts: int = 0
    by_kind: dict[str, int] = field(default_factory=dict)


class FaultInjector:
    """Transform each step's messages according to the rates; deterministic per seed."""

    def __init__(self, rates: FaultRates, seed: int) -> None:
        """Prepare an injector with its own hash key."""
        self.rates = rates
        self.key = np.array([hashing.key(seed, _CH_FAULT)], dtype=np.uint64)
        self.burst_key = np.array([hashing.key(seed, _CH_BURST)], dtype=np.uint64)
        self.held: list[tuple[int, Out]] = []  # (release step, message)
        self.stats = FaultStats()

    def apply(self, step: int, outs: Sequence[Out]) -> list[Out]:
        """Return the messages to publish at `step`: faulted, plus delayed ones now due."""
        released = [o for due, o in self.held if due <= step]
        self.held = [(due, o) for due, o in self.held if due > step]
        r = self.rates
        if not r.any:
            return released + list(outs)
        n = len(outs)
        counters = np.arange(n, dtype=np.int64) + (np.int64(step) << np.int64(24))
        h1 = hashing.hash_at(self.key, counters)
        h2 = hashing.hash_at(self.key, counters + np.int64(1 << 62))
        u = [hashing.bits_uniform(h1, 16 * k, 16) for k in range(4)]
        u5 = hashing.bits_uniform(h2, 0, 16)
        pick = hashing.bits_uniform(h2, 16, 16)
        out: list[Out] = list(released)
        for i, o in enumerate(outs):
            if o.retain:
                out.append(o)
                continue
            if u[0][i] < r.drop:
                self._count("dropped", o)
                continue
            if u[1][i] < r.delay:
                wait = 1 + int(pick[i] * MAX_DELAY_STEPS)
                self.held.append((step + wait, o))
                self._count("delayed", o)
                continue
            if u[2][i] < r.corrupt:
                o = Out(o.kind, o.row, corrupt(o.payload, float(pick[i])), o.retain)
                self._count("corrupted", o)
            out.append(o)
            if u[3][i] < r.duplicate:
                out.append(o)
                self._count("duplicated", o)
            if u5[i] < r.reorder and len(out) >= 2 and not out[-2].retain:
                out[-1], out[-2] = out[-2], out[-1]
                self._count("reordered", o)
        return out

    def flush(self) -> list[Out]:
        """Return every still-delayed message (at shutdown), in release order."""
        held = [o for _, o in sorted(self.held, key=lambda item: item[0])]
        self.held = []
        return held

    def burst(self, step: int) -> bool:
        """Return whether connections drop and reconnect all at once after `step`."""
        if not self.rates.reconnect:
            return False
        u = hashing.uniform(hashing.hash_at(self.burst_key, np.array([step], dtype=np.int64)))
        hit = bool(u[0] < self.rates.reconnect)
        self.stats.bursts += hit
        return hit

    def _count(self, name: str, o: Out) -> None:
        setattr(self.stats, name, getattr(self.stats, name) + 1)
        self.stats.by_kind[o.kind] = self.stats.by_kind.get(o.kind, 0) + 1


def corrupt(payload: bytes, u: float) -> bytes:
    """Damage a payload in one of a few ways a broken device or link does (u picks which)."""
    how = _CORRUPTIONS[min(int(u * len(_CORRUPTIONS)), len(_CORRUPTIONS) - 1)]
    if how == "truncate":
        return payload[: max(1, len(payload) // 2)]
    if how == "not_json":
        return b"\xff" + payload[1:]
    if how == "bad_number":
        # The first measurement becomes a string: valid JSON, broken contract.
        for field_name in (b'"kwh":', b'"demand_kw":', b'"state":'):
            at = payload.find(field_name)
            if at >= 0:
                return (
                    payload[: at + len(field_name)]
                    + b'"oops",'
                    + payload[at + len(field_name) :].split(b",", 1)[-1]
                )
        return payload[:-1]
    changed = payload.replace(b'"meter_id":"', b'"meter_id":"x', 1)
    return changed if changed != payload else payload[: max(1, len(payload) // 2)]


def clock_skews(
    size: int, rate: float, seed: int, index: NDArray[np.uint64]
) -> NDArray[np.float64]:
    """Return per-meter clock skew in seconds: a `rate` share of meters run fast or slow."""
    h = hashing.hash_at(hashing.row_keys(seed, _CH_SKEW, index), np.zeros(size, dtype=np.int64))
    skewed = hashing.bits_uniform(h, 0, 20) < rate
    lo, hi = SKEW_RANGE_S
    size_s = lo + (hi - lo) * hashing.bits_uniform(h, 20, 20)
    sign = np.where(hashing.bits_uniform(h, 40, 1) < 0.5, -1.0, 1.0)
    result: NDArray[np.float64] = np.where(skewed, sign * np.round(size_s, 1), 0.0)
    return result
