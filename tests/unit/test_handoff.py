"""The ingest's hand-off between paho's thread and a writer: bounded, FIFO, batched."""

from __future__ import annotations

import threading
import time

from app.ingest.handoff import Handoff

# How long a thread may wait before the test calls it hung: a guard against hanging the
# suite, never a speed limit, so far beyond what any starved machine takes.
HANG = 300.0


def take(h: Handoff[int], max_size: int = 100, first_wait: float = 0.0) -> list[int]:
    return h.take(max_size, first_wait=first_wait, total_wait=0.05, linger=0.01)


def test_takes_everything_queued_in_order_up_to_the_batch_size() -> None:
    h: Handoff[int] = Handoff(100)
    for n in range(10):
        assert h.put(n, timeout=0)
    assert take(h, max_size=4) == [0, 1, 2, 3]
    assert take(h) == [4, 5, 6, 7, 8, 9]
    assert take(h) == []
    assert h.unfinished == 10
    h.done(10)
    assert h.unfinished == 0


def test_batch_size_counts_by_the_given_size() -> None:
    h: Handoff[int] = Handoff(100, weight=lambda n: n)
    for n in (96, 96, 96, 1):
        h.put(n, timeout=0)
    # 96 + 96 reaches 150: the batch closes after the item that fills it.
    assert h.take(150, first_wait=0, total_wait=0.05, linger=0.01) == [96, 96]
    assert h.weight == 97


def test_a_full_handoff_refuses_after_the_timeout_and_takes_once_there_is_room() -> None:
    h: Handoff[int] = Handoff(2)
    assert h.put(1, timeout=0)
    assert h.put(2, timeout=0)
    assert not h.put(3, timeout=0.01)
    assert len(h) == 2

    got: list[bool] = []
    blocked = threading.Thread(target=lambda: got.append(h.put(3, timeout=HANG)))
    blocked.start()
    time.sleep(0.05)
    assert got == []  # still waiting: that wait is the backpressure
    assert take(h, max_size=1) == [1]
    blocked.join(HANG)
    assert got == [True]
    assert take(h) == [2, 3]


def test_a_waiting_writer_wakes_for_an_item_and_keeps_the_burst_together() -> None:
    h: Handoff[int] = Handoff(100)
    batches: list[list[int]] = []
    writer = threading.Thread(target=lambda: batches.append(take(h, first_wait=HANG)))
    writer.start()
    time.sleep(0.05)
    for n in range(3):
        h.put(n, timeout=0)  # within the linger of one another
    writer.join(HANG)
    assert batches
    assert batches[0][0] == 0
    rest = take(h)
    assert batches[0] + rest == [0, 1, 2]


def test_nothing_is_lost_or_reordered_between_threads() -> None:
    h: Handoff[int] = Handoff(50)
    total = 20_000
    seen: list[int] = []

    def consume() -> None:
        while len(seen) < total:
            batch = h.take(500, first_wait=0.5, total_wait=0.01, linger=0.001)
            seen.extend(batch)
            h.done(len(batch))

    consumer = threading.Thread(target=consume)
    consumer.start()
    for n in range(total):
        assert h.put(n, timeout=HANG)
    consumer.join(HANG)
    assert seen == list(range(total))
    assert h.unfinished == 0


def test_the_weight_bound_holds_back_heavy_items_and_lets_one_through_alone() -> None:
    # Items are readings per message: the count bound (100) alone would queue 9,600.
    h: Handoff[int] = Handoff(100, weight=lambda n: n, max_weight=200)
    assert h.put(96, timeout=0)
    assert h.put(96, timeout=0)
    assert not h.put(96, timeout=0.01)  # 288 > 200
    assert h.put(8, timeout=0)  # 200: light items still fit
    assert (len(h), h.weight) == (3, 200)
    assert take(h, max_size=100) == [96, 96]
    assert h.weight == 8
    assert h.put(96, timeout=0)
    assert take(h) == [8, 96]
    # One item heavier than the whole bound waits for an empty queue, then passes alone.
    assert h.put(1, timeout=0)
    assert not h.put(500, timeout=0.01)
    got: list[bool] = []
    blocked = threading.Thread(target=lambda: got.append(h.put(500, timeout=HANG)))
    blocked.start()
    time.sleep(0.05)
    assert got == []
    assert take(h, max_size=1) == [1]
    blocked.join(HANG)
    assert got == [True]
    assert (len(h), h.weight) == (1, 500)
    assert take(h) == [500]
    assert h.weight == 0
