"""Read-side queries for the segment views, scoped to the caller's tenant like every query."""

from __future__ import annotations

from dataclasses import dataclass
from datetime import datetime, timedelta

from sqlalchemy import and_, case, func, or_, select
from sqlalchemy.orm import Session

from app.db import models
from app.db.queries import utility_clause
from app.domain.access import Scope
from app.domain.rollups import hour_start
from app.domain.segments import UtilityActivity

# Event types a building manager counts as security- or access-relevant.
SECURITY_EVENT_TYPES = ("tamper", "reverse_rotation")
INTERVAL = timedelta(minutes=15)


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
    result = []
    for utility, distributor, meters, online, offline, latest in rows:
        last_day, days = _completeness(session, utility.id, latest)
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
                intervals_last_day=last_day,
                days_in_service=days,
                security_events=_security_event_count(session, utility.id),
            )
        )
    return result


def _completeness(session: Session, utility_id: str, latest: object) -> tuple[int, float]:
    # Windows follow the utility's own newest interval, not the wall clock: the simulator's
    # clock runs accelerated, and a back-filled demo can sit entirely in the past.
    if not isinstance(latest, datetime):
        return 0, 0.0
    in_utility = models.Meter.utility_id == utility_id
    # The intervals in (latest - 1 day, latest]: whole hours from the hourly rollups (a
    # quarter of the rows), the cut hours at either end from the raw intervals.
    first_in = latest - timedelta(days=1) + INTERVAL
    whole_from = hour_start(first_in + timedelta(minutes=45))
    whole_to = hour_start(latest + INTERVAL)
    if whole_from >= whole_to:
        whole_from = whole_to = first_in
    hourly = models.HourlyRollup
    whole = session.scalar(
        select(func.sum(hourly.intervals))
        .join(models.Meter, hourly.meter_id == models.Meter.id)
        .where(in_utility, hourly.start >= whole_from, hourly.start < whole_to)
    )
    cut = session.scalar(
        select(func.count())
        .select_from(models.Reading)
        .join(models.Meter, models.Reading.meter_id == models.Meter.id)
        .where(
            in_utility,
            or_(
                and_(models.Reading.start >= first_in, models.Reading.start < whole_from),
                and_(models.Reading.start >= whole_to, models.Reading.start <= latest),
            ),
        )
    )
    # Each meter's first interval through the primary key (a min over the join would read
    # every interval the utility ever sent).
    first_of_meter = (
        select(func.min(models.Reading.start))
        .where(models.Reading.meter_id == models.Meter.id)
        .scalar_subquery()
    )
    first = session.scalar(select(func.min(first_of_meter)).where(in_utility))
    days = (latest - first).total_seconds() / 86400 + 1 / 96 if first is not None else 0.0
    return int(whole or 0) + int(cut or 0), days


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
