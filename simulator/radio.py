"""Whether a meter's call gets through, and how long it takes: per network, signal and sunset."""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass
from typing import Final

import numpy as np
from numpy.typing import NDArray

from simulator import hashing
from simulator.fleet import LOW_SIGNAL_DBM, NETWORKS, Meter

NETWORK_CODES: Final = tuple(NETWORKS)
_CH_CALL: Final = 201
# Each dB below -100 dBm costs this much success probability (fading, retries that time out).
SIGNAL_PENALTY_PER_DB: Final = 0.01
_NEVER: Final = np.iinfo(np.int64).max


@dataclass(frozen=True, slots=True)
class Radios:
    """Per-meter radio parameters as arrays."""

    network: NDArray[np.intp]
    signal_dbm: NDArray[np.float64]
    success: NDArray[np.float64]
    latency_lo: NDArray[np.float64]
    latency_hi: NDArray[np.float64]
    sunset_s: NDArray[np.int64]  # epoch seconds from which the network is gone
    keys: NDArray[np.uint64]

    @classmethod
    def build(cls, meters: Sequence[Meter], seed: int, start_s: int) -> Radios:
        """Collect each meter's network figures for a simulation starting at `start_s`."""
        specs = [NETWORKS[m.network] for m in meters]
        signal = np.array([m.signal_dbm for m in meters], dtype=np.float64)
        base = np.array([s.success_rate for s in specs])
        penalty = np.maximum(-100.0 - signal, 0.0) * SIGNAL_PENALTY_PER_DB
        sunset = [
            start_s + int(s.sunset_after.total_seconds()) if s.sunset_after else _NEVER
            for s in specs
        ]
        return cls(
            network=np.array([NETWORK_CODES.index(m.network) for m in meters], dtype=np.intp),
            signal_dbm=signal,
            success=np.clip(base - penalty, 0.0, 1.0),
            latency_lo=np.array([s.latency_s[0] for s in specs]),
            latency_hi=np.array([s.latency_s[1] for s in specs]),
            sunset_s=np.array(sunset, dtype=np.int64),
            keys=hashing.row_keys(seed, _CH_CALL, np.array([m.index for m in meters], np.uint64)),
        )

    def low_signal(self) -> NDArray[np.bool_]:
        """Return which meters sit below the low-signal threshold."""
        result: NDArray[np.bool_] = self.signal_dbm < LOW_SIGNAL_DBM
        return result

    def call(
        self, rows: NDArray[np.intp], attempt: int, at_s: int
    ) -> tuple[NDArray[np.bool_], NDArray[np.float64]]:
        """Return (delivered, latency seconds) for calls by `rows`; `attempt` keys the draw."""
        h = hashing.hash_at(self.keys[rows], np.full(len(rows), attempt, dtype=np.int64))
        alive = self.sunset_s[rows] > at_s
        ok = (hashing.bits_uniform(h, 0, 24) < self.success[rows]) & alive
        u = hashing.bits_uniform(h, 24, 24)
        lo, hi = self.latency_lo[rows], self.latency_hi[rows]
        # Skewed towards the fast end: most calls are quick, a few drag.
        return ok, np.round(lo + (hi - lo) * u * u, 3)
