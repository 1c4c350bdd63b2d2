"""Loading a customer's interval data: CSV and Green Button files into a meter, audited."""

from __future__ import annotations

from datetime import UTC, datetime, timedelta
from pathlib import Path

import pytest
from click.testing import CliRunner
from sqlalchemy import func, select

from app.db import models
from app.db.session import make_engine, make_sessionmaker
from app.domain import vee
from app.exports import csvio
from app.ingest.__main__ import main
from tests.factories import T0, seed_database

DATA = Path(__file__).resolve().parent.parent / "data" / "greenbutton"
STEP = timedelta(minutes=15)


def stored(database_url: str, meter_id: str) -> dict[datetime, models.Reading]:
    """Return a meter's stored readings by start."""
    engine = make_engine(database_url)
    with make_sessionmaker(engine)() as session:
        rows = session.scalars(select(models.Reading).where(models.Reading.meter_id == meter_id))
        found = {r.start: r for r in rows}
    engine.dispose()
    return found


def audit_count(database_url: str) -> int:
    """Count audit-trail rows."""
    engine = make_engine(database_url)
    with make_sessionmaker(engine)() as session:
        n = session.scalar(select(func.count()).select_from(models.ReadingAudit)) or 0
    engine.dispose()
    return n


def test_import_csv_fills_gaps_keeps_actuals_and_replace_overwrites(
    database_url: str, tmp_path: Path
) -> None:
    meter = seed_database(database_url, meters=1, intervals=4)[0].id
    # Two stored slots (T0, T0+15) and two new ones after the seeded four.
    intervals = [
        vee.Interval(T0 + k * STEP, 99.0, 1.0, 396.0, quality=vee.VALID) for k in (0, 1, 4, 5)
    ]
    path = tmp_path / "customer.csv"
    path.write_text(csvio.write_csv(meter, intervals, UTC))
    runner = CliRunner()
    base = ["--database-url", database_url]

    result = runner.invoke(main, [*base, "import-csv", "--meter", meter, str(path)])
    assert result.exit_code == 0, result.output
    rows = stored(database_url, meter)
    assert len(rows) == 6
    assert rows[T0].kwh == 10.0  # a stored actual is not overwritten by default
    assert rows[T0 + 4 * STEP].kwh == 99.0
    assert audit_count(database_url) == 0

    result = runner.invoke(main, [*base, "import-csv", "--meter", meter, "--replace", str(path)])
    assert result.exit_code == 0, result.output
    assert "2 stored values changed" in result.output
    rows = stored(database_url, meter)
    assert (rows[T0].kwh, rows[T0 + STEP].kwh) == (99.0, 99.0)
    assert audit_count(database_url) == 2


@pytest.mark.parametrize(
    ("content", "args", "message"),
    [
        ("start_utc,kwh\n2026-03-02T00:07:00Z,1\n", [], "line 2"),
        ("start_utc,kwh\n2026-03-02T00:00:00Z,1\n", ["--tz", "Mars/Olympus"], "--tz"),
        ("meter_id,start_utc,kwh\nother-1,2026-03-02T00:00:00Z,1\n", [], "other-1"),
        # The ingest's plausibility limits hold for files too, and nothing is stored.
        (
            "start_utc,kwh\n2026-03-02T00:00:00Z,1\n2026-03-02T00:15:00Z,1e9\n",
            [],
            "interval 2026-03-02T00:15:00+00:00: demand_kw 4e+09 exceeds 100000",
        ),
        ("start_utc,kwh\n2026-03-02T00:00:00Z,1e308\n", [], "values must be finite"),
        ("start_utc,kwh\n1990-01-01T00:00:00Z,1\n", [], "is before 2000-01-01"),
        ("start_utc,kwh\n2100-01-01T00:00:00Z,1\n", [], "after the receive time"),
        (
            "start_utc,kwh,flags\n2026-03-02T00:00:00Z,1,"
            + ";".join(c * 20 for c in "abcdefg")
            + "\n",
            [],
            "longer than 120 characters",
        ),
        ("start_utc,kwh\n0001-01-01T00:00:00+01:00,1\n", [], "line 2: start_utc"),
        ("start_utc,kwh\n2026-03-02T00:00:00Z," + "9" * 200_000 + "\n", [], "line 2: field"),
    ],
)
def test_import_csv_explains_refusals(
    database_url: str, tmp_path: Path, content: str, args: list[str], message: str
) -> None:
    meter = seed_database(database_url, meters=1, intervals=1)[0].id
    path = tmp_path / "bad.csv"
    path.write_text(content)
    result = CliRunner().invoke(
        main, ["--database-url", database_url, "import-csv", "--meter", meter, *args, str(path)]
    )
    assert result.exit_code != 0
    assert message in result.output
    assert len(stored(database_url, meter)) == 1


def test_import_csv_refuses_an_unknown_meter(database_url: str, tmp_path: Path) -> None:
    seed_database(database_url, meters=1, intervals=1)
    path = tmp_path / "ok.csv"
    path.write_text("start_utc,kwh\n2026-03-02T00:00:00Z,1\n")
    result = CliRunner().invoke(
        main, ["--database-url", database_url, "import-csv", "--meter", "nosuch", str(path)]
    )
    assert result.exit_code == 2
    assert "unknown meter 'nosuch'" in result.output


def test_import_greenbutton_sample_feed_into_a_meter(database_url: str) -> None:
    meter = seed_database(database_url, meters=1, intervals=1)[0].id
    result = CliRunner().invoke(
        main,
        [
            "--database-url",
            database_url,
            "import-greenbutton",
            "--meter",
            meter,
            str(DATA / "test_usage_data.xml"),
        ],
    )
    assert result.exit_code == 0, result.output
    rows = stored(database_url, meter)
    assert len(rows) == 1 + 1340
    first = rows[datetime(2012, 3, 1, 5, tzinfo=UTC)]
    assert (first.kwh, first.quality) == (pytest.approx(0.282), vee.ESTIMATED_REFERENCE_DAY)
    assert rows[datetime(2012, 3, 1, 5, 15, tzinfo=UTC)].quality == vee.EDITED


def test_import_greenbutton_refuses_negative_energy(database_url: str, tmp_path: Path) -> None:
    meter = seed_database(database_url, meters=1, intervals=1)[0].id
    feed = (DATA / "test_usage_data.xml").read_text()
    path = tmp_path / "negative.xml"
    path.write_text(feed.replace("<value>282</value>", "<value>-282</value>", 1))
    result = CliRunner().invoke(
        main, ["--database-url", database_url, "import-greenbutton", "--meter", meter, str(path)]
    )
    assert result.exit_code == 1
    assert "interval 2012-03-01T05:00:00+00:00: kwh and demand_kw must not be negative" in (
        result.output
    )
    assert len(stored(database_url, meter)) == 1


def test_imports_take_the_ingest_future_tolerance(database_url: str, tmp_path: Path) -> None:
    # The demo's simulated clock runs ahead (INGEST_FUTURE_TOLERANCE_S of 10 years there):
    # its future intervals are imported and edited as the ingest would take them.
    meter = seed_database(database_url, meters=1, intervals=1)[0].id
    path = tmp_path / "ahead.csv"
    ahead = datetime.now(UTC).replace(minute=0, second=0, microsecond=0) + timedelta(days=30)
    path.write_text(f"start_utc,kwh\n{ahead.isoformat()},1\n")
    args = ["--database-url", database_url, "import-csv", "--meter", meter, str(path)]
    refused = CliRunner().invoke(main, args)
    assert refused.exit_code == 1
    assert "after the receive time" in refused.output
    ten_years = str(10 * 366 * 86400)
    taken = CliRunner().invoke(main, ["--future-tolerance", ten_years, *args])
    assert taken.exit_code == 0, taken.output
    assert ahead in stored(database_url, meter)
