"""Interval CSV: UTC epoch + local time + quality, round trip, and refusals that name the spot."""

from __future__ import annotations

import csv
import io
from datetime import UTC, datetime, timedelta
from zoneinfo import ZoneInfo

import pytest

from app.domain import vee
from app.exports import csvio

CHICAGO = ZoneInfo("America/Chicago")
# Sunday 1 November 2026: clocks fall back at 02:00 CDT, so 01:00-02:00 local happens twice.
FALL_BACK = datetime(2026, 11, 1, 5, 0, tzinfo=UTC)  # 00:00 CDT
STEP = timedelta(minutes=15)


def make_intervals(n: int = 12) -> list[vee.Interval]:
    """Build n intervals from FALL_BACK cycling through the quality flags."""
    return [
        vee.Interval(
            FALL_BACK + k * STEP,
            1.5 + k,
            0.5,
            (1.5 + k) * 4,
            frozenset({"backfill"}) if k == 3 else frozenset(),
            vee.QUALITIES[k % len(vee.QUALITIES)],
        )
        for k in range(n)
    ]


def test_export_has_epoch_local_time_values_and_quality() -> None:
    text = csvio.write_csv("m-1", make_intervals(), CHICAGO)
    table = list(csv.DictReader(io.StringIO(text)))
    assert list(table[0]) == list(csvio.COLUMNS)
    assert table[0]["start_utc_epoch"] == str(int(FALL_BACK.timestamp()))
    assert table[0]["start_utc"] == "2026-11-01T05:00:00Z"
    assert table[0]["start_local"] == "2026-11-01T00:00:00-05:00"
    # The repeated local hour is told apart by its offset.
    locals_ = [r["start_local"] for r in table]
    assert "2026-11-01T01:00:00-05:00" in locals_
    assert "2026-11-01T01:00:00-06:00" in locals_
    assert [r["quality"] for r in table[:5]] == list(vee.QUALITIES)
    assert table[3]["flags"] == "backfill"
    assert table[1]["kwh"] == "2.5000"


def test_export_round_trips_through_the_reader() -> None:
    original = make_intervals()
    back = csvio.read_csv(csvio.write_csv("m-1", original, CHICAGO))
    assert [r.meter_id for r in back] == ["m-1"] * len(original)
    assert [r.interval for r in back] == original


def test_reader_takes_a_minimal_customer_file_with_local_times() -> None:
    text = "start_local,kwh\n2026-07-01 00:00,3.0\n2026-07-01 00:15,4.0\n\n"
    rows = csvio.read_csv(text, tz=CHICAGO)
    assert [r.interval.start for r in rows] == [
        datetime(2026, 7, 1, 5, 0, tzinfo=UTC),
        datetime(2026, 7, 1, 5, 15, tzinfo=UTC),
    ]
    assert [r.interval.demand_kw for r in rows] == [12.0, 16.0]
    assert {r.interval.quality for r in rows} == {vee.VALID}
    assert {r.meter_id for r in rows} == {None}


@pytest.mark.parametrize(
    ("text", "message"),
    [
        ("when,kwh\n1,2\n", "no start column"),
        ("start_utc,kw\n2026-01-01T00:00:00Z,2\n", "no kwh column"),
        ("start_utc,kwh\n", "no data rows"),
        ("start_utc,kwh\n2026-01-01T00:00:00Z,2\n2026-01-01T00:10:00Z,2\n", "line 3"),
        ("start_utc,kwh\n2026-01-01T00:00:00Z,-1\n", "line 2: kwh: -1 is below 0"),
        ("start_utc,kwh\n2026-01-01T00:00:00Z,lots\n", "line 2: kwh: 'lots' is not a number"),
        ("start_utc,kwh\n2026-01-01T00:00:00Z,nan\n", "line 2: kwh: must be finite"),
        ("start_utc,kwh\nyesterday,1\n", "line 2: start_utc 'yesterday'"),
        ("start_local,kwh\n2026-01-01T00:00:00,1\n", "no UTC offset"),
        ("start_utc_epoch,kwh\n1.5e9,1\n", "not an integer epoch"),
        ("start_utc,kwh,quality\n2026-01-01T00:00:00Z,1,great\n", "quality 'great'"),
        ("start_utc,kwh\n2026-01-01T00:00:00Z,1\n2026-01-01T00:00:00Z,2\n", "a second row"),
        # A row without a meter is the import's meter: it collides with any row at its start.
        ("meter_id,start_utc,kwh\n,2026-01-01T00:00:00Z,1\nm-1,2026-01-01T00:00:00Z,2\n", "line 3"),
        ("meter_id,start_utc,kwh\nm-1,2026-01-01T00:00:00Z,1\n,2026-01-01T00:00:00Z,2\n", "line 3"),
        ("start_utc,kwh\n0001-01-01T00:00:00+01:00,1\n", "line 2: start_utc .* is out of range"),
        ("start_utc,kwh\n2026-01-01T00:00:00Z," + "9" * 200_000 + "\n", "line 2: field larger"),
    ],
)
def test_reader_refuses_with_line_and_column(text: str, message: str) -> None:
    with pytest.raises(csvio.CsvError, match=message):
        csvio.read_csv(text)


@pytest.mark.parametrize(
    ("text", "message"),
    [
        # 02:15 on the spring-forward Sunday never happened in Chicago.
        (
            "start_local,kwh\n2026-03-08T02:15:00,1\n",
            "line 2: .* does not exist in America/Chicago",
        ),
        ("start_local,kwh\n9999-12-31T23:00:00,1\n", "line 2: start_local .* is out of range"),
        # The repeated hour appears at most twice; a third 01:00 is a duplicate.
        ("start_local,kwh\n" + "2026-11-01T01:00:00,1\n" * 3, "line 4: a second row"),
    ],
)
def test_reader_refuses_local_times_it_cannot_place(text: str, message: str) -> None:
    with pytest.raises(csvio.CsvError, match=message):
        csvio.read_csv(text, tz=CHICAGO)


def test_the_repeated_fall_back_hour_is_read_in_order() -> None:
    hour = ["01:00", "01:15", "01:30", "01:45"]
    local = ["00:45", *hour, *hour, "02:00"]  # 01:00-01:45 CDT, then CST
    text = "start_local,kwh\n" + "".join(f"2026-11-01T{t}:00,1\n" for t in local)
    starts = [r.interval.start for r in csvio.read_csv(text, tz=CHICAGO)]
    first = datetime(2026, 11, 1, 5, 45, tzinfo=UTC)  # 00:45 CDT
    assert starts == [first + timedelta(minutes=15 * k) for k in range(10)]


def test_reader_takes_naive_times_in_the_utc_column_as_utc() -> None:
    (row,) = csvio.read_csv("start_utc,kwh\n2026-04-01T05:00:00,1\n", tz=CHICAGO)
    assert row.interval.start == datetime(2026, 4, 1, 5, tzinfo=UTC)


def test_rows_of_different_meters_may_share_a_start() -> None:
    text = "meter_id,start_utc,kwh\nm-1,2026-01-01T00:00:00Z,1\nm-2,2026-01-01T00:00:00Z,2\n"
    assert [r.meter_id for r in csvio.read_csv(text)] == ["m-1", "m-2"]
