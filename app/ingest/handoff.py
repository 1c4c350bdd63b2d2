"""A bounded hand-off from paho's network thread to a writer thread, drained a batch at a time.

`queue.Queue` takes a lock and signals a condition for every item on both sides; with one
small message per reading that was a tenth of the worker's time. Here the writer takes
everything queued in one go, and the producer signals it only when it is idle (waiting for
a first item) or, while a batch gathers, once `wake_at` items are waiting: a writer woken
for every message took that one and waited again. Bounded all the same: a full hand-off
blocks the producer, which is the backpressure (paho stops reading, the broker holds the
messages).

Bounded by weight (readings) as well as by count: the broker's own limit on messages in
flight does not hold the queue down (Mosquitto 2.0.11, Debian 12's, sends a subscriber
everything it has queued once the subscriber acknowledges anything; docs/ingest.md), and
10,000 day-long messages are a million readings: 717 MB of worker in a benchmark burst.
"""

from __future__ import annotations

import threading
import time
from collections import deque
from collections.abc import Callable
from typing import Generic, TypeVar

T = TypeVar("T")
# What the writer is doing, so the producer knows whether to signal it.
_BUSY, _IDLE, _LINGERING = "busy", "idle", "lingering"


def _one(_: object) -> int:
    return 1


class Handoff(Generic[T]):
    """A FIFO of at most `maxsize` items and `max_weight` weight, one producer, one consumer."""

    def __init__(
        self,
        maxsize: int,
        wake_at: int = 64,
        *,
        weight: Callable[[T], int] = _one,
        max_weight: int | None = None,
    ) -> None:
        """Create an empty hand-off; see the module for `wake_at`.

        `weight` is an item's size (readings), which `max_weight` bounds and `take` batches
        by; one item heavier than the bound still passes, alone.
        """
        self.maxsize = max(1, maxsize)
        self.max_weight = max(1, max_weight) if max_weight is not None else None
        self.wake_at = max(1, min(wake_at, self.maxsize))
        self._weigh = weight
        self._weight = 0
        self._items: deque[tuple[T, int]] = deque()
        self._lock = threading.Lock()
        self._not_empty = threading.Condition(self._lock)
        self._not_full = threading.Condition(self._lock)
        self._taker = _BUSY
        self._putters_waiting = 0
        self._unfinished = 0

    def __len__(self) -> int:
        """Return the number of items queued and not yet taken."""
        return len(self._items)

    @property
    def weight(self) -> int:
        """Return the weight of the items queued and not yet taken."""
        return self._weight

    def _full(self, weight: int) -> bool:
        if len(self._items) >= self.maxsize:
            return True
        limit = self.max_weight
        return limit is not None and bool(self._items) and self._weight + weight > limit

    @property
    def unfinished(self) -> int:
        """Items put and not yet marked done (queued or being written)."""
        return self._unfinished

    def put(self, item: T, timeout: float) -> bool:
        """Append `item`, waiting up to `timeout` s for room; return False if still full."""
        weight = self._weigh(item)
        with self._lock:
            if self._full(weight):
                deadline = time.monotonic() + timeout
                while self._full(weight):
                    remaining = deadline - time.monotonic()
                    if remaining <= 0:
                        return False
                    self._putters_waiting += 1
                    try:
                        self._not_full.wait(remaining)
                    finally:
                        self._putters_waiting -= 1
            self._items.append((item, weight))
            self._weight += weight
            self._unfinished += 1
            taker = self._taker
            if taker is _IDLE or (taker is _LINGERING and len(self._items) >= self.wake_at):
                self._taker = _BUSY  # one signal is enough
                self._not_empty.notify()
        return True

    def take(
        self,
        max_size: int,
        *,
        first_wait: float,
        total_wait: float,
        linger: float,
    ) -> list[T]:
        """Take a batch: up to `max_size` (by weight), closed when nothing comes for `linger` s.

        Waits up to `first_wait` s for a first item ([] if none), then keeps taking until the
        batch is full, `total_wait` s have passed, or the stream pauses for `linger` s.
        """
        batch: list[T] = []
        with self._lock:
            if not self._items and not self._wait(first_wait, _IDLE):
                return batch
            filled = 0
            deadline = time.monotonic() + total_wait
            while True:
                items = self._items
                while items and filled < max_size:
                    item, weight = items.popleft()
                    batch.append(item)
                    filled += weight
                    self._weight -= weight
                if self._putters_waiting:
                    self._not_full.notify_all()
                if filled >= max_size:
                    return batch
                remaining = min(deadline - time.monotonic(), linger)
                if remaining <= 0 or not self._wait(remaining, _LINGERING):
                    return batch

    def done(self, count: int) -> None:
        """Mark `count` taken items as written (or given back to the broker)."""
        with self._lock:
            self._unfinished -= count

    def _wait(self, timeout: float, state: str) -> bool:
        # Called with the lock held; True if anything is queued when it returns.
        self._taker = state
        try:
            self._not_empty.wait(timeout)
        finally:
            self._taker = _BUSY
        return bool(self._items)
