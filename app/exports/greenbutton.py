"""Green Button (NAESB REQ.21 ESPI) Atom XML: write one meter's feed, read any usage feed.

The feed holds a UsagePoint, its LocalTimeParameters, one MeterReading with its
ReadingType (15-minute intervals, Wh, delivered energy) and one IntervalBlock per local
day (23 or 25 hours on DST days). VEE quality flags travel as ESPI ReadingQuality codes.
Intervals are labelled by their beginning, as ESPI's timePeriod.start is.
"""

from __future__ import annotations

import uuid
from collections import defaultdict
from collections.abc import Iterable
from dataclasses import dataclass, field
from datetime import UTC, date, datetime, timedelta, tzinfo
from typing import Final

from lxml import etree

from app.domain import vee
from app.exports.series import MeterSeries

ATOM: Final = "http://www.w3.org/2005/Atom"
ESPI: Final = "http://naesb.org/espi"
BASE: Final = "/espi/1_1/resource"
INTERVAL_S: Final = 900
UOM_WH: Final = 72
FORWARD: Final = 1  # ESPI FlowDirectionKind: delivered to the customer
_NS: Final = {"a": ATOM, "e": ESPI}  # the prefixes the reader's paths use

# ESPI QualityOfReading codes for the VEE flags (ESPI: 0 valid, 7 manually edited,
# 8 estimated using reference day, 9 estimated using linear interpolation, 10 questionable).
QUALITY_CODES: Final[dict[vee.Quality, int]] = {
    vee.VALID: 0,
    vee.EDITED: 7,
    vee.ESTIMATED_REFERENCE_DAY: 8,
    vee.ESTIMATED_LINEAR: 9,
    vee.QUESTIONABLE: 10,
}
# Reading back: 14 raw, 17 validated, 18 verified, 19 revenue-quality are trustworthy
# actuals; 11 derived, 12 projected, 13 mixed, 15 normalised, 16 other are not measured.
_FROM_CODE: Final[dict[int, vee.Quality]] = {
    **{code: q for q, code in QUALITY_CODES.items()},
    14: vee.VALID,
    17: vee.VALID,
    18: vee.VALID,
    19: vee.VALID,
}
# ESPI DstRuleType "rule processing disabled": a zone without daylight saving time.
NO_DST_RULE: Final = "FFFFFFFF"


class GreenButtonError(ValueError):
    """Raise when a document is not a usable Green Button feed; the message says why."""


# ---------------------------------------------------------------- writing


def _el(parent: etree._Element, ns: str, tag: str, text: object | None = None) -> etree._Element:
    child = etree.SubElement(parent, f"{{{ns}}}{tag}")
    if text is not None:
        child.text = str(text)
    return child


def _stamp(value: datetime) -> str:
    return value.astimezone(UTC).strftime("%Y-%m-%dT%H:%M:%SZ")


def _local_days(start: datetime, end: datetime, tz: tzinfo) -> list[date]:
    first = start.astimezone(tz).date()
    last = (end - timedelta(seconds=1)).astimezone(tz).date()
    return [first + timedelta(days=k) for k in range((last - first).days + 1)]


def local_midnight(day: date, tz: tzinfo) -> datetime:
    """Return the aware UTC instant of a local date's midnight."""
    return datetime(day.year, day.month, day.day, tzinfo=tz).astimezone(UTC)


@dataclass(frozen=True)
class TimeParameters:
    """A zone's ESPI LocalTimeParameters for one year: offsets in seconds, DstRuleType rules."""

    tz_offset: int
    dst_offset: int
    dst_start_rule: str
    dst_end_rule: str


def time_parameters(tz: tzinfo, year: int) -> TimeParameters:
    """Return the zone's standard offset, DST offset and DST rules as in force in `year`.

    Read from the zone's own transitions, not assumed to be US rules: the API exports in
    any IANA zone, and a southern-hemisphere zone's DST runs from October to April.
    """
    changes = _transitions(tz, year)
    offsets = [before for _, before, _ in changes] + [after for _, _, after in changes]
    start = [(t, before) for t, before, after in changes if after > before]
    end = [(t, before) for t, before, after in changes if after < before]
    if len(start) != 1 or len(end) != 1:
        # No DST (or a year the zone moved its standard time): one offset, rules disabled.
        january = datetime(year, 1, 1, tzinfo=tz).utcoffset() or timedelta(0)
        return TimeParameters(int(january.total_seconds()), 0, NO_DST_RULE, NO_DST_RULE)
    standard, daylight = min(offsets), max(offsets)
    return TimeParameters(
        int(standard.total_seconds()),
        int((daylight - standard).total_seconds()),
        _dst_rule(start[0][0] + start[0][1]),
        _dst_rule(end[0][0] + end[0][1]),
    )


def _transitions(tz: tzinfo, year: int) -> list[tuple[datetime, timedelta, timedelta]]:
    """Return (instant, offset before, offset after) of each UTC offset change in `year`."""

    def offset(at: datetime) -> timedelta:
        return at.astimezone(tz).utcoffset() or timedelta(0)

    found: list[tuple[datetime, timedelta, timedelta]] = []
    day = datetime(year, 1, 1, tzinfo=UTC)
    while day.year == year:
        nxt = day + timedelta(days=1)
        before, after = offset(day), offset(nxt)
        if before != after:
            # Bisect to the second: the first instant with the new offset.
            low, high = day, nxt
            while high - low > timedelta(seconds=1):
                mid = low + (high - low) / 2
                low, high = (mid, high) if offset(mid) == before else (low, mid)
            found.append((high, before, after))
        day = nxt
    return found


def _dst_rule(wall: datetime) -> str:
    """Encode a transition's local wall time (before it) as an ESPI DstRuleType.

    As a weekday's occurrence in its month (operators 2-5 for the first to fourth, 7 for
    the last, which a fifth always is), which is how DST laws are written: the US's second Sunday of March is
    "360E2000", the EU's last Sunday of March at 02:00 local is "3E0E2000".
    """
    days_in_month = (wall.replace(day=28) + timedelta(days=4)).replace(day=1) - timedelta(days=1)
    last = wall.day + 7 > days_in_month.day
    operator = 7 if last else 1 + (wall.day + 6) // 7
    rule = (
        wall.month << 28
        | operator << 25
        | wall.isoweekday() << 17
        | wall.hour << 12
        | (wall.minute * 60 + wall.second)
    )
    return f"{rule:08X}"


def write_feed(series: MeterSeries, *, now: datetime) -> bytes:
    """Write a meter's intervals as a Green Button feed (UTF-8 XML bytes)."""
    # Deterministic ids: the same export twice is the same document.
    key = f"wattline:{series.utility_id}:{series.meter_id}"
    customer = f"{BASE}/RetailCustomer/{series.utility_id}"
    usage_point = f"{customer}/UsagePoint/{series.meter_id}"
    meter_reading = f"{usage_point}/MeterReading/01"
    reading_type = f"{BASE}/ReadingType/{series.meter_id}-kwh"
    time_params = f"{BASE}/LocalTimeParameters/{series.meter_id}"
    updated = _stamp(now)

    feed = etree.Element(f"{{{ATOM}}}feed", nsmap={None: ATOM, "espi": ESPI})
    _el(feed, ATOM, "id", f"urn:uuid:{uuid.uuid5(uuid.NAMESPACE_URL, key + ':feed')}")
    _el(feed, ATOM, "title", f"Wattline Green Button export: {series.title}")
    _el(feed, ATOM, "updated", updated)
    _link(feed, "self", f"{usage_point}/feed", "espi-feed/UsagePoint")

    def entry(
        self_href: str,
        kind: str,
        title: str,
        related: Iterable[tuple[str, str]] = (),
    ) -> etree._Element:
        e = _el(feed, ATOM, "entry")
        _el(e, ATOM, "id", f"urn:uuid:{uuid.uuid5(uuid.NAMESPACE_URL, key + self_href)}")
        _link(e, "self", self_href, f"espi-entry/{kind}")
        _link(e, "up", self_href.rsplit("/", 1)[0], f"espi-feed/{kind}")
        for href, rtype in related:
            _link(e, "related", href, rtype)
        _el(e, ATOM, "title", title)
        _el(e, ATOM, "published", updated)
        _el(e, ATOM, "updated", updated)
        return _el(e, ATOM, "content")

    content = entry(
        usage_point,
        "UsagePoint",
        series.title,
        [
            (f"{usage_point}/MeterReading", "espi-feed/MeterReading"),
            (time_params, "espi-entry/LocalTimeParameters"),
        ],
    )
    up = _el(content, ESPI, "UsagePoint")
    _el(_el(up, ESPI, "ServiceCategory"), ESPI, "kind", 0)  # 0 = electricity

    params = time_parameters(series.tz, series.start.astimezone(series.tz).year)
    content = entry(time_params, "LocalTimeParameters", "Local time of the meter")
    ltp = _el(content, ESPI, "LocalTimeParameters")
    _el(ltp, ESPI, "dstEndRule", params.dst_end_rule)
    _el(ltp, ESPI, "dstOffset", params.dst_offset)
    _el(ltp, ESPI, "dstStartRule", params.dst_start_rule)
    _el(ltp, ESPI, "tzOffset", params.tz_offset)

    content = entry(
        meter_reading,
        "MeterReading",
        "Fifteen-minute delivered energy",
        [
            (f"{meter_reading}/IntervalBlock", "espi-feed/IntervalBlock"),
            (reading_type, "espi-entry/ReadingType"),
        ],
    )
    _el(content, ESPI, "MeterReading")

    content = entry(reading_type, "ReadingType", "Energy delivered, Wh, 15-minute intervals")
    rt = _el(content, ESPI, "ReadingType")
    for tag, value in (
        ("accumulationBehaviour", 4),  # delta data: each value is the interval's energy
        ("commodity", 1),  # electricity, secondary metered
        ("dataQualifier", 12),  # normal
        ("defaultQuality", 0),  # valid unless an IntervalReading says otherwise
        ("flowDirection", 1),  # forward (delivered)
        ("intervalLength", INTERVAL_S),
        ("kind", 12),  # energy
        ("phase", 769),  # ABC
        ("powerOfTenMultiplier", 0),
        ("timeAttribute", 0),
        ("uom", UOM_WH),
    ):
        _el(rt, ESPI, tag, value)

    by_day: dict[date, list[vee.Interval]] = defaultdict(list)
    for i in sorted(series.intervals, key=lambda i: i.start):
        if series.start <= i.start < series.end:
            by_day[i.start.astimezone(series.tz).date()].append(i)
    for n, day in enumerate(_local_days(series.start, series.end, series.tz), start=1):
        rows = by_day.get(day)
        if not rows:
            continue
        midnight = local_midnight(day, series.tz)
        length = local_midnight(day + timedelta(days=1), series.tz) - midnight
        content = entry(
            f"{meter_reading}/IntervalBlock/{n}", "IntervalBlock", f"Intervals of {day}"
        )
        block = _el(content, ESPI, "IntervalBlock")
        interval = _el(block, ESPI, "interval")
        _el(interval, ESPI, "duration", int(length.total_seconds()))
        _el(interval, ESPI, "start", int(midnight.timestamp()))
        for i in rows:
            reading = _el(block, ESPI, "IntervalReading")
            if i.quality != vee.VALID:
                _el(_el(reading, ESPI, "ReadingQuality"), ESPI, "quality", QUALITY_CODES[i.quality])
            period = _el(reading, ESPI, "timePeriod")
            _el(period, ESPI, "duration", INTERVAL_S)
            _el(period, ESPI, "start", int(i.start.timestamp()))
            _el(reading, ESPI, "value", round(i.kwh * 1000))
    return etree.tostring(feed, xml_declaration=True, encoding="UTF-8", pretty_print=True)


def _link(parent: etree._Element, rel: str, href: str, kind: str) -> None:
    link = _el(parent, ATOM, "link")
    link.set("rel", rel)
    link.set("href", href)
    link.set("type", kind)


# ---------------------------------------------------------------- reading


@dataclass
class ImportedReading:
    """One MeterReading of an imported feed: its units and intervals (values in kWh)."""

    href: str
    title: str
    usage_point_title: str = ""
    interval_seconds: int = INTERVAL_S
    uom: int = UOM_WH
    intervals: list[vee.Interval] = field(default_factory=list)


# No DTD, no entities, no network: a customer's file is untrusted input.
_PARSER: Final = etree.XMLParser(
    resolve_entities=False, no_network=True, load_dtd=False, huge_tree=False
)


def _int(node: etree._Element, path: str, default: int | None = None) -> int:
    found = node.findtext(path, namespaces=_NS)
    if found is None or not found.strip():
        if default is not None:
            return default
        raise GreenButtonError(f"missing {path.replace('e:', '')}")
    try:
        return int(found.strip())
    except ValueError:
        raise GreenButtonError(f"{path.replace('e:', '')} {found!r} is not an integer") from None


def read_feed(document: bytes) -> list[ImportedReading]:
    """Read every electricity MeterReading of a Green Button feed into kWh intervals."""
    try:
        root = etree.fromstring(document, parser=_PARSER)
    except etree.XMLSyntaxError as exc:
        raise GreenButtonError(f"not well-formed XML: {exc}") from None
    ns = _NS
    if root.tag != f"{{{ATOM}}}feed":
        raise GreenButtonError("the document is not an Atom feed")

    def links(entry: etree._Element, rel: str) -> list[str]:
        return [str(link.get("href")) for link in entry.findall(f"a:link[@rel='{rel}']", ns)]

    readings: dict[str, ImportedReading] = {}
    reading_types: dict[str, etree._Element] = {}
    usage_points: dict[str, str] = {}
    blocks: list[tuple[str, etree._Element]] = []
    wants_type: dict[str, list[str]] = {}
    for entry in root.findall("a:entry", ns):
        selfs = links(entry, "self")
        if not selfs:
            continue
        href = selfs[0]
        title = entry.findtext("a:title", default="", namespaces=ns) or ""
        content = entry.find("a:content", ns)
        if content is None:
            continue
        if content.find("e:MeterReading", ns) is not None:
            readings[href] = ImportedReading(href=href, title=title)
            wants_type[href] = links(entry, "related")
        elif (rt := content.find("e:ReadingType", ns)) is not None:
            reading_types[href] = rt
        elif content.find("e:UsagePoint", ns) is not None:
            usage_points[href] = title
        else:
            blocks.extend(
                ("/".join(href.split("/")[:-2]), b) for b in content.findall("e:IntervalBlock", ns)
            )
    if not readings:
        raise GreenButtonError("the feed has no MeterReading")

    skipped: list[str] = []
    # A feed of one MeterReading may leave its blocks' links loose: they are all its own.
    single = len(readings) == 1
    for href, reading in list(readings.items()):
        types = [reading_types[r] for r in wants_type[href] if r in reading_types]
        if not types and len(reading_types) == 1:
            types = list(reading_types.values())  # feeds that omit the related link
        if not types:
            raise GreenButtonError(f"MeterReading {href} has no ReadingType")
        rt = types[0]
        reading.uom = _int(rt, "e:uom")
        flow = _int(rt, "e:flowDirection", FORWARD)
        if reading.uom != UOM_WH or flow != FORWARD:
            # Gas (therms), demand (W) or energy sent back to the grid: not what a C&I
            # meter's intervals hold here, so left out rather than refusing the feed.
            skipped.append(f"{href} (uom {reading.uom}, flowDirection {flow})")
            del readings[href]
            continue
        reading.interval_seconds = _int(rt, "e:intervalLength", INTERVAL_S)
        reading.usage_point_title = usage_points.get(href.split("/MeterReading/")[0], "")
        multiplier = _int(rt, "e:powerOfTenMultiplier", 0)
        if not -12 <= multiplier <= 12:  # ESPI UnitMultiplierKind: pico (-12) to tera (12)
            raise GreenButtonError(f"powerOfTenMultiplier {multiplier} is not from -12 to 12")
        default_quality = _int(rt, "e:defaultQuality", 0)
        own = [b for owner, b in blocks if owner == href or single]
        reading.intervals = _intervals(
            own, reading.interval_seconds, 10.0**multiplier, default_quality
        )
    if not readings:
        raise GreenButtonError(
            "the feed has no MeterReading of delivered energy in Wh (uom 72, flowDirection 1): "
            + ", ".join(skipped)
        )
    return list(readings.values())


def _intervals(
    blocks: list[etree._Element], length: int, scale: float, default_quality: int
) -> list[vee.Interval]:
    """Read IntervalBlocks' readings as kWh intervals, in order; refuse a start read twice."""
    ns = _NS
    found: dict[datetime, vee.Interval] = {}
    for block in blocks:
        for ir in block.findall("e:IntervalReading", ns):
            start = _int(ir, "e:timePeriod/e:start")
            seconds = _int(ir, "e:timePeriod/e:duration", length)
            code = _int(ir, "e:ReadingQuality/e:quality", default_quality)
            try:
                at = datetime.fromtimestamp(start, UTC)
                kwh = _int(ir, "e:value") * scale / 1000
            except (OverflowError, ValueError, OSError):
                raise GreenButtonError(
                    f"IntervalReading at {start}: its start or value is out of range"
                ) from None
            if at in found:
                raise GreenButtonError(f"a second IntervalReading for {_stamp(at)}")
            hours = seconds / 3600
            found[at] = vee.Interval(
                start=at,
                kwh=kwh,
                demand_kw=kwh / hours if hours else 0.0,
                quality=_FROM_CODE.get(code, vee.QUESTIONABLE),
            )
    return sorted(found.values(), key=lambda i: i.start)
