"""Read-side queries for the segment views, scoped to the caller's tenant like every query."""

from __future__ import annotations

from dataclasses import dataclass
from datetime import datetime, timedelta

from sqlalchemy import case, func, select
from sqlalchemy.orm import Session

from app.db import models
from app.db.queries import utility_clause
from app.domain.access import Scope
from app.domain.rollups import hour_start
from app.domain.segments import INTERVAL, UtilityActivity, intervals_due

# Event types a building manager counts as security- or access-relevant.
SECURITY_EVENT_TYPES = ("tamper", "reverse_rotation")


def utility_activity(session: Session, scope: Scope, segment: str) -> list[UtilityActivity]:
    """Gather each visible utility of `segment` with its fleet counts and data completeness."""
    counts = (
        select(
            models.Meter.utility_id.label("utility_id"),
            func.count().label("meters"),
            func.sum(case((models.Meter.status == "online", 1), else_=0)).label("online"),
            func.sum(case((models.Meter.status == "offline", 1), else_=0)).label("offline"),
            func.max(models.Meter.last_interval_start).label("latest"),
        )
        .group_by(models.Meter.utility_id)
        .subquery()
    )
    rows = session.execute(
        select(
            models.Utility,
            models.Distributor.name,
            func.coalesce(counts.c.meters, 0),
            func.coalesce(counts.c.online, 0),
            func.coalesce(counts.c.offline, 0),
            counts.c.latest,
        )
        .join(models.Distributor, models.Utility.distributor_id == models.Distributor.id)
        .outerjoin(counts, counts.c.utility_id == models.Utility.id)
        .where(utility_clause(scope), models.Utility.segment == segment)
        .order_by(models.Utility.name)
    ).all()
    latest_of = {u.id: latest for u, *_, latest in rows if isinstance(latest, datetime)}
    reads = last_day_reads(session, latest_of)
    result = []
    for utility, distributor, meters, online, offline, latest in rows:
        days = _days_in_service(session, utility.id, latest)
        result.append(
            UtilityActivity(
                utility_id=utility.id,
                name=utility.name,
                segment=utility.segment,
                distributor=distributor,
                region=utility.region,
                c_and_i_customers=utility.c_and_i_customers,
                modem_lines=utility.modem_lines,
                meters=int(meters),
                online=int(online),
                offline=int(offline),
                intervals_last_day=reads.get(utility.id, (0, 0))[0],
                intervals_due_last_day=reads.get(utility.id, (0, 0))[1],
                days_in_service=days,
                security_events=_security_event_count(session, utility.id),
            )
        )
    return result


def day_window(latest: datetime) -> tuple[datetime, datetime]:
    """Return [start, end) of the 24 whole hours of data up to the newest complete hour.

    Windows follow a utility's own newest interval, not the wall clock: the simulator's
    clock runs accelerated, and a back-filled demo can sit entirely in the past. The hour
    still arriving is left out, so a fleet sending everything counts 96 intervals a meter.
    """
    end = hour_start(latest + INTERVAL)
    return end - timedelta(days=1), end


def last_day_reads(session: Session, latest_of: dict[str, datetime]) -> dict[str, tuple[int, int]]:
    """Return each utility's (intervals read, intervals due) in the day up to its newest data."""
    read = _intervals_last_day(session, latest_of)
    due = _intervals_due_last_day(session, latest_of)
    return {u: (read.get(u, 0), due.get(u, 0)) for u in latest_of}


def _intervals_last_day(session: Session, latest_of: dict[str, datetime]) -> dict[str, int]:
    # One pass over the hourly rollups' covering index per distinct window (usually one),
    # instead of one per utility. Reads are what the meters measured: valid or questionable,
    # not a VEE estimate filling in for a read that never came, nor a hand edit.
    by_window: dict[tuple[datetime, datetime], list[str]] = {}
    for utility_id, latest in latest_of.items():
        by_window.setdefault(day_window(latest), []).append(utility_id)
    hourly = models.HourlyRollup
    out: dict[str, int] = {}
    for (start, end), utilities in by_window.items():
        for utility_id, count in session.execute(
            select(models.Meter.utility_id, func.sum(hourly.valid + hourly.questionable))
            .join(models.Meter, hourly.meter_id == models.Meter.id)
            .where(
                models.Meter.utility_id.in_(utilities), hourly.start >= start, hourly.start < end
            )
            .group_by(models.Meter.utility_id)
        ):
            out[utility_id] = int(count or 0)
    return out


def _intervals_due_last_day(session: Session, latest_of: dict[str, datetime]) -> dict[str, int]:
    # Per meter: its status and newest interval say how much of the window its call-in
    # schedule owes by now (`intervals_due`); one row a meter, summed per utility.
    out: dict[str, int] = dict.fromkeys(latest_of, 0)
    windows = {utility_id: day_window(latest) for utility_id, latest in latest_of.items()}
    for utility_id, status, last in session.execute(
        select(
            models.Meter.utility_id, models.Meter.status, models.Meter.last_interval_start
        ).where(models.Meter.utility_id.in_(list(latest_of)))
    ):
        start, end = windows[utility_id]
        out[utility_id] += intervals_due(start, end, status == "offline", last)
    return out


def _days_in_service(session: Session, utility_id: str, latest: object) -> float:
    if not isinstance(latest, datetime):
        return 0.0
    meters = select(models.Meter.id).where(models.Meter.utility_id == utility_id)
    # The first hour from the hourly index, then the first interval inside it: both stop at
    # the first match instead of reading everything the utility ever sent.
    hourly = models.HourlyRollup
    first_hour = session.scalar(
        select(hourly.start).where(hourly.meter_id.in_(meters)).order_by(hourly.start).limit(1)
    )
    if first_hour is None:
        return 0.0
    first = session.scalar(
        select(models.Reading.start)
        .where(
            models.Reading.meter_id.in_(meters),
            models.Reading.start >= first_hour,
            models.Reading.start < first_hour + timedelta(hours=1),
        )
        .order_by(models.Reading.start)
        .limit(1)
    )
    return (latest - (first or first_hour)).total_seconds() / 86400 + 1 / 96


def _security_event_count(session: Session, utility_id: str) -> int:
    return int(
        session.scalar(
            select(func.count())
            .select_from(models.Event)
            .join(models.Meter, models.Event.meter_id == models.Meter.id)
            .where(
                models.Meter.utility_id == utility_id,
                models.Event.type.in_(SECURITY_EVENT_TYPES),
            )
        )
        or 0
    )


@dataclass(frozen=True, slots=True)
class SecurityEventRow:
    """One tamper or access-relevant event at a secured site."""

    at: datetime
    type: str
    severity: str
    meter_id: str
    site_name: str
    utility_name: str


def security_events(session: Session, scope: Scope, limit: int = 50) -> list[SecurityEventRow]:
    """List the newest tamper and access events at the visible secured sites."""
    rows = session.execute(
        select(
            models.Event.at,
            models.Event.type,
            models.Event.severity,
            models.Meter.id,
            models.Meter.site_name,
            models.Utility.name,
        )
        .join(models.Meter, models.Event.meter_id == models.Meter.id)
        .join(models.Utility, models.Meter.utility_id == models.Utility.id)
        .where(
            utility_clause(scope),
            models.Utility.segment == "security",
            models.Event.type.in_(SECURITY_EVENT_TYPES),
        )
        .order_by(models.Event.at.desc())
        .limit(limit)
    ).all()
    return [SecurityEventRow(*row) for row in rows]
