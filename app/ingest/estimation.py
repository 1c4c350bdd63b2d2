"""Run VEE over stored readings: flag what fails validation, store estimates for gaps."""

from __future__ import annotations

import logging
from collections import Counter
from dataclasses import dataclass, field
from datetime import datetime, timedelta, tzinfo
from typing import Any

from sqlalchemy import delete, insert, select, update
from sqlalchemy.orm import Session

from app.db import models, partitions
from app.db.locks import hold_meters
from app.domain import vee
from app.domain.localtime import zone_for
from app.exports.series import interval_from_row
from app.ingest import rollups
from app.ingest.store import Stored, audit_rows, stored_estimates, upsert_readings

log = logging.getLogger(__name__)


@dataclass
class VeeSummary:
    """What one VEE run over a meter and range did."""

    meter_id: str
    findings: Counter[str] = field(default_factory=Counter)
    flagged: int = 0
    estimated_linear: int = 0
    estimated_reference_day: int = 0
    replaced_estimates: int = 0
    withdrawn_estimates: int = 0
    unestimated: int = 0


def run_vee(
    session: Session,
    meter_id: str,
    start: datetime,
    end: datetime,
    *,
    now: datetime,
    config: vee.VeeConfig | None = None,
    tz: tzinfo | None = None,
    active: bool | None = None,
) -> VeeSummary:
    """Validate and estimate one meter's [start, end) in the caller's transaction.

    `tz` None: the meter's own zone, which decides its reference days (local weekdays) and
    the local days of its daily rollups (a UTC default once rebuilt them as UTC days).
    `active` None: decided by the meter's stored status (`vee.is_active`).
    """
    cfg = config or vee.VeeConfig()
    # Before reading: an actual the ingest stored between this read and the upsert below
    # was audited as an estimate VEE never stored.
    hold_meters(session, [meter_id])
    meter = session.execute(
        select(models.Meter.status, models.Meter.lon).where(models.Meter.id == meter_id)
    ).one_or_none()
    if meter is None:
        raise ValueError(f"unknown meter {meter_id!r}")
    status, lon = meter
    if tz is None:
        tz = zone_for(lon)
    if active is None:
        # The latest status, not the status during [start, end): no history of it is kept.
        active = vee.is_active(status)
    history_from = start - timedelta(days=cfg.reference_lookback_days + 1)
    # Past `end` up to the linear limit: a gap crossing it is judged whole (vee.estimate).
    rows = session.scalars(
        select(models.Reading)
        .where(
            models.Reading.meter_id == meter_id,
            models.Reading.start >= history_from,
            models.Reading.start <= end + cfg.max_linear_gap + vee.STEP,
        )
        .order_by(models.Reading.start)
    ).all()
    # Stored estimates count as missing: a rerun recomputes them from the actuals known now.
    intervals = [interval_from_row(r) for r in rows if r.quality not in vee.ESTIMATED]
    estimated_before = {
        r.start: Stored(r.kwh, r.kvarh, r.demand_kw, r.quality)
        for r in rows
        if r.quality in vee.ESTIMATED and start <= r.start < end
    }
    # Reads in [start, end] only: the sum check judges the intervals of [start, end), so a
    # pair of reads needs both ends inside to cover any of them completely.
    registers = [
        vee.RegisterRead(at, kwh)
        for at, kwh in session.execute(
            select(models.RegisterRead.at, models.RegisterRead.kwh)
            .where(
                models.RegisterRead.meter_id == meter_id,
                models.RegisterRead.at >= start,
                models.RegisterRead.at <= end,
            )
            .order_by(models.RegisterRead.at)
        )
    ]
    result = vee.run(
        intervals,
        start,
        end,
        now=now,
        config=cfg,
        registers=registers,
        active=active,
        tz=tz,
    )
    summary = VeeSummary(meter_id, findings=Counter(f.rule for f in result.findings))

    if result.questionable:
        flagged = session.execute(
            update(models.Reading)
            .where(
                models.Reading.meter_id == meter_id,
                models.Reading.start.in_([i.start for i in result.questionable]),
                models.Reading.quality == vee.VALID,
            )
            .values(quality=vee.QUESTIONABLE)
            .returning(
                models.Reading.start,
                models.Reading.kwh,
                models.Reading.kvarh,
                models.Reading.demand_kw,
            )
        ).all()
        # The audit keeps every change of a stored value, a quality flag's too. RETURNING
        # gives the values after the UPDATE: the quality before it was valid (the WHERE).
        was: dict[tuple[str, datetime], Stored | None] = {
            (meter_id, at): Stored(kwh, kvarh, kw, vee.VALID) for at, kwh, kvarh, kw in flagged
        }
        flagged_as = {
            (meter_id, at): {
                "kwh": kwh,
                "kvarh": kvarh,
                "demand_kw": kw,
                "quality": vee.QUESTIONABLE,
            }
            for at, kwh, kvarh, kw in flagged
        }
        if was:
            session.connection().execute(
                insert(models.ReadingAudit), audit_rows(was, flagged_as, "vee", now)
            )
        summary.flagged = len(flagged)

    if result.estimates:
        new: dict[tuple[str, datetime], dict[str, Any]] = {
            (meter_id, e.start): {
                "meter_id": meter_id,
                "start": e.start,
                "kwh": e.kwh,
                "kvarh": e.kvarh,
                "demand_kw": e.demand_kw,
                "voltage_a": None,
                "voltage_b": None,
                "voltage_c": None,
                "flags": "",
                "quality": e.quality,
                "received_at": now,
            }
            for e in result.estimates
        }
        replaced = stored_estimates(session, list(new))
        conn = session.connection()
        partitions.Months().ensure(conn, {start for _, start in new})
        # The same upsert as the ingest: an estimate never overwrites an actual.
        conn.execute(upsert_readings(session), list(new.values()))
        changed: dict[tuple[str, datetime], Stored | None] = {
            k: v for k, v in replaced.items() if v.differs(new[k])
        }
        summary.replaced_estimates = len(changed)
        # A slot that held nothing gets its estimate on the trail too (old values: none), so
        # the trail tells every estimate VEE stored from a value the meter sent.
        changed.update({k: None for k in new if k not in replaced})
        if changed:
            conn.execute(
                insert(models.ReadingAudit),
                audit_rows(changed, new, "vee", now),
            )
        summary.estimated_linear = sum(e.quality == vee.ESTIMATED_LINEAR for e in result.estimates)
        summary.estimated_reference_day = len(result.estimates) - summary.estimated_linear
    withdrawn = _withdraw(session, meter_id, estimated_before, result, now)
    summary.withdrawn_estimates = len(withdrawn)
    changed_starts = [i.start for i in (*result.questionable, *result.estimates)] + withdrawn
    if changed_starts:
        rollups.refresh(session, {meter_id: changed_starts}, {meter_id: tz})
    summary.unestimated = len(result.unestimated)
    log.info("VEE %s %s..%s: %s", meter_id, start, end, summary)
    return summary


def _withdraw(
    session: Session,
    meter_id: str,
    estimated_before: dict[datetime, Stored],
    result: vee.VeeResult,
    now: datetime,
) -> list[datetime]:
    """Delete stored estimates this run no longer makes; return their starts.

    An estimate whose end point this run flags questionable, or that a shorter linear limit
    or missing reference days no longer give, would otherwise stay stored while the run
    reports its slot missing. The audit keeps the old values, with none after.
    """
    remade = {e.start for e in result.estimates}
    stale = sorted(at for at in estimated_before if at not in remade)
    if not stale:
        return []
    # Only if still an estimate: an actual that arrived meanwhile keeps its slot.
    gone = session.scalars(
        delete(models.Reading)
        .where(
            models.Reading.meter_id == meter_id,
            models.Reading.start.in_(stale),
            models.Reading.quality.in_(sorted(vee.ESTIMATED)),
        )
        .returning(models.Reading.start)
    ).all()
    if gone:
        nothing = dict.fromkeys(("kwh", "kvarh", "demand_kw", "quality"))
        session.connection().execute(
            insert(models.ReadingAudit),
            audit_rows(
                {(meter_id, at): estimated_before[at] for at in gone},
                {(meter_id, at): nothing for at in gone},
                "vee",
                now,
            ),
        )
    return list(gone)
