"""Green Button export: valid against the official ESPI/Atom schemas, round-trips, reads the sample."""

from __future__ import annotations

import hashlib
from datetime import UTC, date, datetime, timedelta
from pathlib import Path
from zoneinfo import ZoneInfo

import pytest
from lxml import etree

from app.domain import vee
from app.exports import greenbutton
from app.exports.series import MeterSeries

DATA = Path(__file__).resolve().parent.parent / "data" / "greenbutton"
CHICAGO = ZoneInfo("America/Chicago")
STEP = timedelta(minutes=15)
NS = {"a": greenbutton.ATOM, "e": greenbutton.ESPI}


@pytest.fixture(scope="module")
def schema() -> etree.XMLSchema:
    """Load the official schemas (ESPI 3.3 espi.xsd + its Atom profile) from tests/data."""
    return etree.XMLSchema(etree.parse(str(DATA / "greenbutton.xsd")))


def make_series(days: int = 3, first: datetime | None = None) -> MeterSeries:
    """Three local days around the 2026 spring-forward (Sunday 8 March), every quality used."""
    start = first or datetime(2026, 3, 7, tzinfo=CHICAGO).astimezone(UTC)
    end = datetime(2026, 3, 7 + days, tzinfo=CHICAGO).astimezone(UTC)
    cycle = list(vee.QUALITIES)
    intervals = []
    k = 0
    t = start
    while t < end:
        kwh = 10 + (k % 13) * 0.123456
        intervals.append(vee.Interval(t, kwh, kwh / 3, kwh * 4, quality=cycle[k % len(cycle)]))
        k += 1
        t += STEP
    return MeterSeries(
        "glpl-00001", "Riverside Clinic", "glpl", CHICAGO, start, end, tuple(intervals)
    )


def test_export_validates_against_the_official_schema(schema: etree.XMLSchema) -> None:
    document = greenbutton.write_feed(make_series(), now=datetime(2026, 3, 11, tzinfo=UTC))
    tree = etree.fromstring(document)
    schema.assertValid(tree)
    assert tree.find("a:entry/a:content/e:UsagePoint/e:ServiceCategory/e:kind", NS).text == "0"
    rt = tree.find("a:entry/a:content/e:ReadingType", NS)
    assert rt.findtext("e:intervalLength", namespaces=NS) == "900"
    assert rt.findtext("e:uom", namespaces=NS) == "72"
    ltp = tree.find("a:entry/a:content/e:LocalTimeParameters", NS)
    assert ltp.findtext("e:tzOffset", namespaces=NS) == "-21600"
    assert ltp.findtext("e:dstOffset", namespaces=NS) == "3600"
    # One block per local day; the spring-forward Sunday has 23 hours (92 intervals).
    blocks = tree.findall("a:entry/a:content/e:IntervalBlock", NS)
    assert [b.findtext("e:interval/e:duration", namespaces=NS) for b in blocks] == [
        "86400",
        "82800",
        "86400",
    ]
    assert [len(b.findall("e:IntervalReading", NS)) for b in blocks] == [96, 92, 96]
    first_start = int(blocks[0].findtext("e:interval/e:start", namespaces=NS))
    assert datetime.fromtimestamp(first_start, CHICAGO) == datetime(2026, 3, 7, tzinfo=CHICAGO)
    codes = [q.text for q in tree.iterfind(".//e:ReadingQuality/e:quality", NS)]
    assert set(codes) == {"7", "8", "9", "10"}  # valid is the ReadingType's defaultQuality


def rule_instant(rule: str, year: int, offset_before: int) -> datetime:
    """Decode an ESPI DstRuleType for `year` as the XSD documents it (independent of the writer)."""
    bits = int(rule, 16)
    seconds, hours = bits & 0xFFF, (bits >> 12) & 0x1F
    weekday, day, operator, month = (
        (bits >> 17) & 0x7,
        (bits >> 20) & 0x1F,
        (bits >> 25) & 0x7,
        (bits >> 28) & 0xF,
    )
    if operator == 0:
        date_ = date(year, month, day)
    else:
        first = date(year, month, 1)
        days = [first + timedelta(days=k) for k in range(31)]
        days = [d for d in days if d.month == month]
        matching = [d for d in days if d.isoweekday() == weekday]
        if operator == 1:
            date_ = next(d for d in matching if d.day >= day)
        elif operator == 7:
            date_ = matching[-1]
        else:
            date_ = matching[operator - 2]
    # The rule is local wall time in the offset before the change: UTC is that minus it.
    midnight = datetime(date_.year, date_.month, date_.day, tzinfo=UTC)
    return midnight + timedelta(hours=hours, seconds=seconds - offset_before)


def offset_changes(zone: ZoneInfo, year: int) -> list[tuple[datetime, int, int]]:
    """(instant, offset before, offset after) of the zone's changes in `year`, minute by minute."""
    changes = []
    t = datetime(year, 1, 1, tzinfo=UTC)
    previous = t.astimezone(zone).utcoffset()
    while t.year == year:
        t += timedelta(minutes=15)
        now = t.astimezone(zone).utcoffset()
        if now != previous:
            changes.append((t, int(previous.total_seconds()), int(now.total_seconds())))
            previous = now
    return changes


def test_us_zones_get_the_rules_the_sample_feed_carries() -> None:
    sample = etree.parse(str(DATA / "test_usage_data.xml"))
    ltp = sample.find(".//e:LocalTimeParameters", NS)
    for year in (2012, 2026, 2031):
        params = greenbutton.time_parameters(ZoneInfo("America/New_York"), year)
        assert params.dst_start_rule == ltp.findtext("e:dstStartRule", namespaces=NS)
        assert params.dst_end_rule == ltp.findtext("e:dstEndRule", namespaces=NS)
        assert (params.tz_offset, params.dst_offset) == (-18000, 3600)


@pytest.mark.parametrize(
    ("zone", "tz_offset", "dst_offset"),
    [
        ("America/Chicago", -21600, 3600),
        ("America/Anchorage", -32400, 3600),
        ("Europe/Berlin", 3600, 3600),
        ("Europe/London", 0, 3600),
        ("Australia/Sydney", 36000, 3600),  # DST from October to April
        ("Pacific/Auckland", 43200, 3600),
        ("Australia/Lord_Howe", 37800, 1800),  # half an hour of DST
    ],
)
@pytest.mark.parametrize("year", [2025, 2026, 2027])
def test_the_rules_decode_to_the_zones_own_transitions(
    zone: str, tz_offset: int, dst_offset: int, year: int
) -> None:
    params = greenbutton.time_parameters(ZoneInfo(zone), year)
    assert (params.tz_offset, params.dst_offset) == (tz_offset, dst_offset)
    changes = offset_changes(ZoneInfo(zone), year)
    (start,) = [(t, before) for t, before, after in changes if after > before]
    (end,) = [(t, before) for t, before, after in changes if after < before]
    assert rule_instant(params.dst_start_rule, year, start[1]) == start[0]
    assert rule_instant(params.dst_end_rule, year, end[1]) == end[0]


@pytest.mark.parametrize(
    ("zone", "tz_offset"),
    [("America/Phoenix", -25200), ("Pacific/Honolulu", -36000), ("UTC", 0), ("Asia/Tokyo", 32400)],
)
def test_a_zone_without_dst_disables_the_rules(zone: str, tz_offset: int) -> None:
    params = greenbutton.time_parameters(ZoneInfo(zone), 2026)
    assert params == greenbutton.TimeParameters(tz_offset, 0, "FFFFFFFF", "FFFFFFFF")


def test_the_last_weekday_of_a_month_is_encoded_as_the_last() -> None:
    # The EU's last Sunday of March fell on the 29th in 2026 (a fifth Sunday) and on the
    # 26th in 2023 (a fourth): both are the "last" operator, the same rule every year.
    berlin = ZoneInfo("Europe/Berlin")
    rules = {greenbutton.time_parameters(berlin, y).dst_start_rule for y in (2023, 2026)}
    assert rules == {"3E0E2000"}
    assert greenbutton.time_parameters(berlin, 2026).dst_end_rule == "AE0E3000"


def test_a_southern_zone_exports_valid_time_parameters(schema: etree.XMLSchema) -> None:
    sydney = ZoneInfo("Australia/Sydney")
    base = make_series(1)
    first = datetime(2026, 4, 5, tzinfo=sydney).astimezone(UTC)  # the 25-hour day
    intervals = tuple(
        vee.Interval(first + k * STEP, 1.0, 0.3, 4.0, quality=vee.VALID) for k in range(100)
    )
    series = MeterSeries(
        base.meter_id, base.title, base.utility_id, sydney, first, first + 100 * STEP, intervals
    )
    tree = etree.fromstring(greenbutton.write_feed(series, now=datetime(2026, 4, 7, tzinfo=UTC)))
    schema.assertValid(tree)
    ltp = tree.find("a:entry/a:content/e:LocalTimeParameters", NS)
    assert ltp.findtext("e:tzOffset", namespaces=NS) == "36000"
    assert ltp.findtext("e:dstOffset", namespaces=NS) == "3600"
    assert ltp.findtext("e:dstStartRule", namespaces=NS) == "A40E2000"  # 1st Sunday Oct 02:00
    assert ltp.findtext("e:dstEndRule", namespaces=NS) == "440E3000"  # 1st Sunday Apr 03:00
    (block,) = tree.findall("a:entry/a:content/e:IntervalBlock", NS)
    assert block.findtext("e:interval/e:duration", namespaces=NS) == "90000"


def test_a_schema_violation_is_caught(schema: etree.XMLSchema) -> None:
    tree = etree.fromstring(greenbutton.write_feed(make_series(1), now=datetime.now(UTC)))
    link = tree.find("a:entry/a:link", NS)
    del link.attrib["type"]  # ESPI 3.3 requires a type on every link
    assert not schema.validate(tree)


def test_export_round_trips_through_the_importer() -> None:
    series = make_series()
    document = greenbutton.write_feed(series, now=datetime(2026, 3, 11, tzinfo=UTC))
    (reading,) = greenbutton.read_feed(document)
    assert reading.usage_point_title == "Riverside Clinic"
    assert (reading.uom, reading.interval_seconds) == (72, 900)
    assert [i.start for i in reading.intervals] == [i.start for i in series.intervals]
    assert [i.quality for i in reading.intervals] == [i.quality for i in series.intervals]
    # Wh resolution: every value comes back within half a watt-hour.
    assert [i.kwh for i in reading.intervals] == pytest.approx(
        [round(i.kwh * 1000) / 1000 for i in series.intervals], abs=1e-9
    )


def test_importer_reads_the_green_button_sample_feed() -> None:
    (reading,) = greenbutton.read_feed((DATA / "test_usage_data.xml").read_bytes())
    assert reading.title == "Fifteen Minute Electricity Consumption"
    assert reading.usage_point_title == "Front Electric Meter"
    assert len(reading.intervals) == 1340
    first = reading.intervals[0]
    assert first.start == datetime(2012, 3, 1, 5, tzinfo=UTC)
    assert first.kwh == pytest.approx(0.282)
    assert first.demand_kw == pytest.approx(1.128)
    assert [i.quality for i in reading.intervals[:3]] == [
        vee.ESTIMATED_REFERENCE_DAY,
        vee.EDITED,
        vee.VALID,
    ]
    starts = [i.start for i in reading.intervals]
    assert starts == sorted(starts)
    assert len(set(starts)) == len(starts)


def test_the_sample_fails_the_schema_only_on_untyped_links(schema: etree.XMLSchema) -> None:
    # The shared README's note, checked: the sample predates ESPI 3.3's typed links.
    tree = etree.parse(str(DATA / "test_usage_data.xml"))
    assert not schema.validate(tree)
    for link in tree.iterfind(".//a:link", NS):
        link.set("type", "espi-entry/x")
    schema.assertValid(tree)


@pytest.mark.parametrize(
    ("document", "reason"),
    [
        (b"<feed", "not well-formed"),
        (b"<rss/>", "not an Atom feed"),
        (b'<feed xmlns="http://www.w3.org/2005/Atom"/>', "no MeterReading"),
    ],
)
def test_importer_refuses_what_it_cannot_use(document: bytes, reason: str) -> None:
    with pytest.raises(greenbutton.GreenButtonError, match=reason):
        greenbutton.read_feed(document)


CUSTOMER = "/espi/1_1/resource/RetailCustomer/1"
APRIL_1 = 1775001600  # 2026-04-01T00:00:00Z


def feed_entry(href: str, content: str, related: tuple[str, ...] = ()) -> str:
    """One Atom entry of a hand-made feed."""
    links = "".join(f'<link rel="related" href="{r}"/>' for r in related)
    return (
        f'<entry><id>urn:x:{href}</id><link rel="self" href="{href}"/>{links}'
        f"<title>t</title><content>{content}</content></entry>"
    )


def meter_reading(
    point: int,
    reading: int,
    uom: int = 72,
    flow: int = 1,
    length: int = 900,
    multiplier: int = 0,
    values: tuple[tuple[int, int], ...] = ((APRIL_1, 500),),
) -> str:
    """A UsagePoint's MeterReading, its ReadingType and one IntervalBlock, as feed entries."""
    up = f"{CUSTOMER}/UsagePoint/{point}"
    mr = f"{up}/MeterReading/{reading}"
    rt = f"/espi/1_1/resource/ReadingType/{point}-{reading}"
    espi = 'xmlns="http://naesb.org/espi"'
    readings = "".join(
        f"<IntervalReading><timePeriod><duration>{length}</duration><start>{start}</start>"
        f"</timePeriod><value>{value}</value></IntervalReading>"
        for start, value in values
    )
    return "".join(
        [
            feed_entry(
                up,
                f"<UsagePoint {espi}><ServiceCategory><kind>0</kind></ServiceCategory></UsagePoint>",
            ),
            feed_entry(mr, f"<MeterReading {espi}/>", (rt,)),
            feed_entry(
                rt,
                f"<ReadingType {espi}><flowDirection>{flow}</flowDirection><intervalLength>"
                f"{length}</intervalLength><powerOfTenMultiplier>{multiplier}"
                f"</powerOfTenMultiplier><uom>{uom}</uom></ReadingType>",
            ),
            feed_entry(
                f"{mr}/IntervalBlock/1",
                f"<IntervalBlock {espi}><interval><duration>86400</duration><start>"
                f"{values[0][0]}</start></interval>{readings}</IntervalBlock>",
            ),
        ]
    )


def hand_made_feed(*entries: str) -> bytes:
    """An Atom feed of the entries."""
    head = '<feed xmlns="http://www.w3.org/2005/Atom"><id>urn:f</id><title>f</title>'
    return (head + "".join(entries) + "</feed>").encode()


def test_importer_leaves_out_readings_that_are_not_delivered_energy_in_wh() -> None:
    # Electricity beside gas in therms, a demand reading in W, energy sent to the grid.
    document = hand_made_feed(
        meter_reading(2, 1, uom=169, length=86400, values=((APRIL_1, 3),)),
        meter_reading(1, 1, values=((APRIL_1, 500), (APRIL_1 + 900, 700))),
        meter_reading(1, 2, uom=38, length=3600),
        meter_reading(3, 1, flow=19, values=((APRIL_1, 7000),)),
    )
    (reading,) = greenbutton.read_feed(document)
    assert reading.href == f"{CUSTOMER}/UsagePoint/1/MeterReading/1"
    assert [(i.start.timestamp(), i.kwh) for i in reading.intervals] == [
        (APRIL_1, 0.5),
        (APRIL_1 + 900, 0.7),
    ]


@pytest.mark.parametrize(
    ("entries", "reason"),
    [
        (meter_reading(1, 1, flow=19), r"no MeterReading of delivered energy.*flowDirection 19"),
        (meter_reading(1, 1, uom=169), r"no MeterReading of delivered energy.*uom 169"),
        (meter_reading(1, 1, multiplier=400), "powerOfTenMultiplier 400 is not from -12 to 12"),
        (meter_reading(1, 1, values=((APRIL_1, 10**400),)), "out of range"),
        (meter_reading(1, 1, values=((10**13 * 900, 1),)), "out of range"),
        (
            meter_reading(1, 1, values=((APRIL_1 + 1800, 100), (APRIL_1 + 1800, 9000))),
            "a second IntervalReading for 2026-04-01T00:30:00Z",
        ),
    ],
)
def test_importer_refuses_a_feed_it_cannot_read_exactly(entries: str, reason: str) -> None:
    with pytest.raises(greenbutton.GreenButtonError, match=reason):
        greenbutton.read_feed(hand_made_feed(entries))


def test_importer_does_not_resolve_external_entities(tmp_path: Path) -> None:
    secret = tmp_path / "secret.txt"
    secret.write_text("99999")
    series = make_series(1)
    document = greenbutton.write_feed(series, now=datetime.now(UTC)).decode()
    body = document.split("?>", 1)[1]
    body = body.replace("<value>", "<value>&x;", 1)
    evil = f'<?xml version="1.0"?><!DOCTYPE feed [<!ENTITY x SYSTEM "file://{secret}">]>{body}'
    try:
        (reading,) = greenbutton.read_feed(evil.encode())
    except greenbutton.GreenButtonError:
        return  # refusing is fine too
    assert "99999" not in str(reading.intervals[0].kwh)


# The official files this repository was given, beside its checkout (../shared/standards),
# and their SHA-256 as recorded when they were copied (tests/data/greenbutton/SHA256SUMS).
SHARED = Path(__file__).resolve().parents[3] / "shared" / "standards" / "greenbutton"
OFFICIAL = {
    name: digest
    for digest, name in (
        line.split() for line in (DATA / "SHA256SUMS").read_text(encoding="utf-8").splitlines()
    )
}


@pytest.mark.parametrize("name", sorted(OFFICIAL))
def test_the_schema_copies_are_the_official_files(name: str) -> None:
    """tests/data holds unchanged copies of the official schemas and sample feed."""
    assert hashlib.sha256((DATA / name).read_bytes()).hexdigest() == OFFICIAL[name]
    # Where the official folder is beside the checkout, the recorded digests are its files'.
    if SHARED.is_dir():
        assert hashlib.sha256((SHARED / name).read_bytes()).hexdigest() == OFFICIAL[name]


def test_every_schema_file_is_recorded() -> None:
    """Each schema and sample file in tests/data has a recorded digest to be checked by."""
    assert set(OFFICIAL) == {p.name for p in DATA.iterdir() if p.suffix in (".xsd", ".xml")}
