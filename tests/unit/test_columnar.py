"""The columnar batch path equals the per-message one: rows, hours and days, bit for bit."""

from __future__ import annotations

import math
import random
import struct
from collections import defaultdict
from datetime import UTC, datetime, timedelta, timezone, tzinfo
from itertools import pairwise
from typing import Any

import pytest

from app.domain import rollups, telemetry
from app.domain.localtime import zone_for
from app.ingest import columnar, pgcopy, store
from tests.factories import make_reading

T0 = datetime(2026, 3, 6, 20, tzinfo=UTC)  # the batches run over a spring-forward Sunday
STEP = timedelta(minutes=15)
RECEIVED = datetime(2026, 3, 12, 9, 30, 1, 250_000, tzinfo=UTC)


def _bits(value: Any) -> Any:
    # float.hex tells -0.0 from 0.0 and every last bit apart; == would not.
    if isinstance(value, float):
        return value.hex()
    if isinstance(value, tuple):
        return tuple(_bits(v) for v in value)
    return value


def _messages(seed: int) -> list[tuple[str, tuple[telemetry.Reading, ...]]]:
    """Messages of distinct meters (ids of several lengths), any start slot and length."""
    rng = random.Random(seed)
    # An hour whose every value is -0.0: its sum from 0.0 is 0.0, not -0.0.
    zero = tuple(
        make_reading(T0 + k * STEP, kwh=-0.0, kvarh=-0.0, demand_kw=-0.0) for k in range(4)
    )
    out = [(f"zero-{seed}", zero)]
    for m in range(rng.randint(1, 12)):
        meter_id = "m" * rng.randint(1, 3) + f"-{seed}-{m}"
        first = T0 + rng.randrange(0, 200) * STEP
        n = rng.choice([1, 2, 3, 4, 5, 7, 96, rng.randint(1, 300)])
        readings = tuple(
            make_reading(
                first + k * STEP,
                # -0.0, ties and values whose sums round differently by order.
                kwh=rng.choice([0.0, -0.0, 0.1, 0.2, 0.3, 1e16, 1.0, rng.random() * 50]),
                kvarh=rng.choice([-0.0, 0.0, -0.1, 0.7, -3.3, rng.uniform(-20, 20)]),
                demand_kw=rng.choice([-0.0, 0.0, 4.0, 4.0, 8.5, rng.random() * 400]),
                voltage=(rng.uniform(100, 300), rng.uniform(100, 300), rng.uniform(100, 300)),
            )
            for k in range(n)
        )
        out.append((meter_id, readings))
    return out


def _block(messages: list[tuple[str, tuple[telemetry.Reading, ...]]]) -> columnar.Block:
    builder = columnar.Builder()
    for meter_id, readings in messages:
        columns = telemetry.columns_of(readings)
        assert columnar.plain(columns)
        builder.add(meter_id, columns, RECEIVED)
    return builder.block()


def _valid_hours(
    messages: list[tuple[str, tuple[telemetry.Reading, ...]]],
) -> list[tuple[str, rollups.Rollup]]:
    out = []
    for meter_id, readings in messages:
        starts, kwh, kvarh, demand_kw, *_ = zip(*readings, strict=True)
        hours = rollups.valid_hours(meter_id, starts, kwh, kvarh, demand_kw)
        assert hours is not None
        out.extend(hours)
    return out


@pytest.mark.parametrize("seed", range(40))
def test_hours_equal_valid_hours_bit_for_bit(seed: int) -> None:
    messages = _messages(seed)
    hours = _block(messages).hours()
    expected = _valid_hours(messages)
    assert [(m, _bits(tuple(r))) for m, r in hours.pairs()] == [
        (m, _bits(tuple(r))) for m, r in expected
    ]
    assert _bits(tuple(hours.power_factors())) == _bits(tuple(r.power_factor for _, r in expected))
    assert hours.complete == all(r.intervals == 4 for _, r in expected)


@pytest.mark.parametrize("seed", range(40))
def test_days_equal_combined_hours_bit_for_bit(seed: int) -> None:
    messages = _messages(seed)
    zone_list: list[tzinfo] = [
        zone_for(-74.0),
        zone_for(-118.2),
        UTC,
        timezone(timedelta(hours=-5)),
        zone_for(-87.6),
    ]
    zones = {m: zone_list[i % len(zone_list)] for i, (m, _) in enumerate(messages)}
    # What add_hourly does with the same hours: group by (meter, local day), combine.
    by_day: dict[tuple[str, datetime], list[rollups.Rollup]] = defaultdict(list)
    for meter_id, hour in _valid_hours(messages):
        by_day[(meter_id, rollups.day_start(hour.start, zones[meter_id]))].append(hour)
    expected = [(m, rollups.combine(parts, day)) for (m, day), parts in by_day.items()]
    got = _block(messages).hours().days(zones)
    assert [(m, _bits(tuple(r))) for m, r in got] == [
        (m, _bits(tuple(r))) for m, r in expected if r is not None
    ]


def _parse(data: bytes, kinds: list[str]) -> list[tuple[Any, ...]]:
    """Decode binary COPY tuples of these PostgreSQL types: the test's own reader."""
    rows, at = [], 0
    while at < len(data):
        (count,) = struct.unpack_from(">h", data, at)
        assert count == len(kinds)
        at += 2
        row: list[Any] = []
        for kind in kinds:
            (size,) = struct.unpack_from(">i", data, at)
            at += 4
            if size < 0:
                row.append(None)
                continue
            raw = data[at : at + size]
            at += size
            if kind == "float8":
                row.append(struct.unpack(">d", raw)[0])
            elif kind == "int4":
                row.append(struct.unpack(">i", raw)[0])
            elif kind == "timestamptz":
                (us,) = struct.unpack(">q", raw)
                row.append(pgcopy.PG_EPOCH + timedelta(microseconds=us))
            else:
                row.append(raw.decode())
        rows.append(tuple(row))
    return rows


@pytest.mark.parametrize("seed", range(20))
def test_reading_copy_holds_the_general_paths_rows(seed: int) -> None:
    messages = _messages(seed)
    data = _block(messages).reading_copy()
    got = _parse(data, [kind for _, kind in store.PG_COLUMNS])
    expected = []
    for meter_id, readings in messages:
        made, _ = store.message_rows(meter_id, readings, telemetry.columns_of(readings), RECEIVED)
        expected.extend(made)
    # Grouped by meter-id length, then in message order: the same set of rows.
    assert sorted(map(_bits, got)) == sorted(map(_bits, expected))


def _pieces(
    messages: list[tuple[str, tuple[telemetry.Reading, ...]]], seed: int
) -> list[tuple[str, tuple[telemetry.Reading, ...], datetime]]:
    """Cut each message into pieces that continue one another, interleaved across meters."""
    rng = random.Random(seed)
    queues = []
    for meter_id, readings in messages:
        cuts = sorted(rng.sample(range(1, len(readings)), min(len(readings) - 1, 5)))
        bounds = [0, *cuts, len(readings)]
        queues.append([(meter_id, readings[a:b]) for a, b in pairwise(bounds)])
    out = []
    received = RECEIVED
    while any(queues):
        queue = rng.choice([q for q in queues if q])
        meter_id, piece = queue.pop(0)
        received += timedelta(milliseconds=rng.randint(1, 900))
        out.append((meter_id, piece, received))
    return out


@pytest.mark.parametrize("seed", range(20))
def test_a_meters_continuing_messages_are_one_run(seed: int) -> None:
    """Pieces of a meter's readings, arriving interleaved: the whole readings' hours and rows."""
    messages = _messages(seed)
    builder = columnar.Builder()
    for meter_id, piece, received in _pieces(messages, seed):
        assert builder.add(meter_id, telemetry.columns_of(piece), received)
    # One run a meter, in the order the meters first arrived.
    whole = dict(messages)
    assert sorted(builder.meters) == sorted(whole)
    block = builder.block()
    assert [(m, _bits(tuple(r))) for m, r in block.hours().pairs()] == [
        (m, _bits(tuple(r))) for m, r in _valid_hours([(m, whole[m]) for m in builder.meters])
    ]
    # Each row keeps the time its own message was received.
    expected = []
    for meter_id, piece, received in _pieces(messages, seed):
        made, _ = store.message_rows(meter_id, piece, telemetry.columns_of(piece), received)
        expected.extend(made)
    got = _parse(block.reading_copy(), [kind for _, kind in store.PG_COLUMNS])
    assert sorted(map(_bits, got)) == sorted(map(_bits, expected))


@pytest.mark.parametrize("offset", [-4, -1, 1, 40])
def test_a_message_that_does_not_continue_its_meters_run_is_refused(offset: int) -> None:
    """Overlapping, repeated, early or after a gap: refused, and the run is unchanged."""
    readings = [make_reading(T0 + k * STEP) for k in range(8)]
    builder = columnar.Builder()
    assert builder.add("m", telemetry.columns_of(readings[:4]), RECEIVED)
    other = [make_reading(T0 + (4 + offset + k) * STEP) for k in range(2)]
    assert not builder.add("m", telemetry.columns_of(other), RECEIVED)
    assert builder.add("n", telemetry.columns_of(other), RECEIVED)
    assert builder.add("m", telemetry.columns_of(readings[4:]), RECEIVED)
    assert builder.counts == [8, 2]
    hours = builder.block().hours()
    assert [(m, _bits(tuple(r))) for m, r in hours.pairs()] == [
        (m, _bits(tuple(r))) for m, r in _valid_hours([("m", tuple(readings)), ("n", tuple(other))])
    ]


def test_hours_copy_holds_the_hours_rows_and_refuses_null_power_factors() -> None:
    messages = _messages(7)
    hours = _block(messages).hours()
    factors = hours.power_factors()
    kinds = ["varchar", "timestamptz", "float8", "float8", "float8", "timestamptz", "float8"]
    kinds += ["int4"] * 5
    if None in factors:
        assert hours.copy(factors) is None
        factors = [f if f is not None else 1.0 for f in factors]
    data = hours.copy(factors)
    assert data is not None
    got = _parse(data, kinds)
    expected = [
        (m, r.start, r.kwh, r.kvarh, r.peak_kw, r.peak_at, f, *r[5:])
        for (m, r), f in zip(hours.pairs(), factors, strict=True)
    ]
    assert sorted(map(_bits, got)) == sorted(map(_bits, expected))
    assert hours.copy([*factors[:-1], None]) is None


@pytest.mark.parametrize(
    "change",
    [
        "flag",
        "two-phase",
        "gap",
        "out-of-order",
        "repeated",
        "other-zone",
    ],
)
def test_plain_refuses_what_the_columns_cannot_hold(change: str) -> None:
    starts = [T0 + k * STEP for k in range(6)]
    readings = [make_reading(s) for s in starts]
    assert columnar.plain(telemetry.columns_of(readings))
    if change == "flag":
        readings[2] = make_reading(starts[2], flags=frozenset({"partial"}))
    elif change == "two-phase":
        readings[3] = make_reading(starts[3], voltage=(120.0, 120.0))
    elif change == "gap":
        readings = readings[:2] + readings[3:]
    elif change == "out-of-order":
        readings[1], readings[2] = readings[2], readings[1]
    elif change == "repeated":
        # Same span from first to last, one start twice and one missing.
        readings[2] = make_reading(starts[1])
    else:
        eastern = timezone(timedelta(hours=-5))
        readings = [make_reading(s.astimezone(eastern)) for s in starts]
    assert not columnar.plain(telemetry.columns_of(readings))


def test_records_write_nulls_constants_and_refuse_ragged_text() -> None:
    import numpy as np

    data = pgcopy.records(
        [
            pgcopy.Field("varchar", np.array([b"ab", b"cd"])),
            pgcopy.Field("int4", np.array([1, -2], dtype=np.int64)),
            pgcopy.Field("float8", None),
            pgcopy.Field("varchar", b""),
            pgcopy.Field("float8", 2.5),
        ],
        2,
    )
    kinds = ["varchar", "int4", "float8", "varchar", "float8"]
    assert _parse(data, kinds) == [("ab", 1, None, "", 2.5), ("cd", -2, None, "", 2.5)]
    with pytest.raises(ValueError, match="differ in length"):
        pgcopy.records([pgcopy.Field("varchar", np.array([b"a", b"bc"]))], 2)
    with pytest.raises(ValueError, match="no fixed-width"):
        pgcopy.records([pgcopy.Field("json", b"{}")], 1)


def test_power_factors_equal_pythons_round_even_next_to_a_half() -> None:
    """The column-at-a-time power factor equals round(kwh / hypot, 4), ties and zeros included."""
    import numpy as np

    rng = random.Random(3)
    kwh, kvarh = [], []
    for _ in range(4000):
        t = rng.uniform(0.001, 500.0)
        # A ratio of exactly k + 0.5 ten-thousandths, give or take the rounding of hypot.
        r = (rng.randrange(1, 10_000) + 0.5) / 10_000
        kwh.append(t)
        kvarh.append(rng.choice([1, -1]) * math.sqrt(max(t * t / (r * r) - t * t, 0.0)))
    kwh += [0.0, -0.0, 0.0, 5.0, rng.random()]
    kvarh += [0.0, 0.0, 3.0, 0.0, -0.0]
    n = len(kwh)
    hours = columnar.Hours(
        meters=["m"],
        message=np.zeros(n, dtype=np.int64),
        start=np.zeros(n, dtype=np.int64),
        kwh=np.array(kwh),
        kvarh=np.array(kvarh),
        peak_kw=np.zeros(n),
        peak_at=np.zeros(n, dtype=np.int64),
        intervals=np.full(n, 4, dtype=np.int64),
    )
    expected = tuple(rollups.power_factor(k, q) for k, q in zip(kwh, kvarh, strict=True))
    assert _bits(tuple(hours.power_factors())) == _bits(expected)
    assert expected[n - 5 : n - 3] == (None, None)
