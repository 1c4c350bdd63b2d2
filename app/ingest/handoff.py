"""A bounded hand-off from paho's network thread to a writer thread, drained a batch at a time.

`queue.Queue` takes a lock and signals a condition for every item on both sides; with one
small message per reading that was a tenth of the worker's time. Here the writer takes
everything queued in one go, and the producer signals it only when it is idle (waiting for
a first item) or, while a batch gathers, once `wake_at` items are waiting: a writer woken
for every message took that one and waited again. Bounded all the same: a full hand-off blocks the producer, which is the backpressure
(paho stops reading, the broker holds the messages).
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


class Handoff(Generic[T]):
    """A FIFO of at most `maxsize` items with one producer and one consumer."""

    def __init__(self, maxsize: int, wake_at: int = 64) -> None:
        """Create an empty hand-off of at most `maxsize` items; see the module for `wake_at`."""
        self.maxsize = max(1, maxsize)
        self.wake_at = max(1, min(wake_at, self.maxsize))
        self._items: deque[T] = deque()
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
    def unfinished(self) -> int:
        """Items put and not yet marked done (queued or being written)."""
        return self._unfinished

    def put(self, item: T, timeout: float) -> bool:
        """Append `item`, waiting up to `timeout` s for room; return False if still full."""
        with self._lock:
            if len(self._items) >= self.maxsize:
                deadline = time.monotonic() + timeout
                while len(self._items) >= self.maxsize:
                    remaining = deadline - time.monotonic()
                    if remaining <= 0:
                        return False
                    self._putters_waiting += 1
                    try:
                        self._not_full.wait(remaining)
                    finally:
                        self._putters_waiting -= 1
            self._items.append(item)
            self._unfinished += 1
            taker = self._taker
            if taker is _IDLE or (taker is _LINGERING and len(self._items) >= self.wake_at):
                self._taker = _BUSY  # one signal is enough
                self._not_empty.notify()
        return True

    def take(
        self,
        size: Callable[[T], int],
        max_size: int,
        *,
        first_wait: float,
        total_wait: float,
        linger: float,
    ) -> list[T]:
        """Take a batch: up to `max_size` (by `size`), closed when nothing comes for `linger` s.

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
                    item = items.popleft()
                    batch.append(item)
                    filled += size(item)
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
