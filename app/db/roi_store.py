"""Saved ROI scenarios and fleet profiles, every query scoped to the caller's tenant.

Scenario tenancy follows the distributor: vendor staff see every scenario, a distributor's
staff only the scenarios of their distributor. A scenario the caller may not see is
``None`` here and 404 at the edge, never 403, so ids do not leak.
"""

from __future__ import annotations

from dataclasses import dataclass
from datetime import datetime
from typing import Any

from sqlalchemy import ColumnElement, func, select, true
from sqlalchemy.orm import Session

from app.db import models
from app.db.queries import utility_clause
from app.db.segment_queries import last_day_reads
from app.domain.access import Scope
from app.domain.segments import read_success
from roi.calibrate import FleetProfile


def scenario_clause(scope: Scope) -> ColumnElement[bool]:
    """Return the WHERE clause on `roi_scenarios` that a scope allows."""
    if scope.everything:
        return true()
    if scope.distributor_id is not None:
        return models.RoiScenario.distributor_id == scope.distributor_id
    # Utility-level logins never own scenarios (the views refuse them before this).
    return models.RoiScenario.id.is_(None)


def list_scenarios(session: Session, scope: Scope) -> list[models.RoiScenario]:
    """List the scenarios a scope may see, most recently changed first."""
    return list(
        session.scalars(
            select(models.RoiScenario)
            .where(scenario_clause(scope))
            .order_by(models.RoiScenario.updated_at.desc(), models.RoiScenario.id.desc())
        )
    )


def get_scenario(session: Session, scope: Scope, scenario_id: int) -> models.RoiScenario | None:
    """Return a scenario if the scope may see it."""
    return session.scalars(
        select(models.RoiScenario).where(
            models.RoiScenario.id == scenario_id, scenario_clause(scope)
        )
    ).first()


def versions(session: Session, scenario_id: int) -> list[tuple[models.RoiScenarioVersion, str]]:
    """Return a scenario's versions, newest first, each with the author's name."""
    rows = session.execute(
        select(models.RoiScenarioVersion, models.User.name)
        .join(models.User, models.User.id == models.RoiScenarioVersion.created_by_id)
        .where(models.RoiScenarioVersion.scenario_id == scenario_id)
        .order_by(models.RoiScenarioVersion.version.desc())
    )
    return [(version, name) for version, name in rows]


def get_version(
    session: Session, scenario_id: int, version: int
) -> models.RoiScenarioVersion | None:
    """Return one version of a scenario (the caller has checked the scenario's scope)."""
    return session.scalars(
        select(models.RoiScenarioVersion).where(
            models.RoiScenarioVersion.scenario_id == scenario_id,
            models.RoiScenarioVersion.version == version,
        )
    ).first()


@dataclass(frozen=True)
class NewVersion:
    """What a save records besides the document."""

    document: dict[str, Any]
    model_version: str
    npv: float
    changes: dict[str, Any]
    note: str


def create_scenario(
    session: Session,
    *,
    name: str,
    customer_name: str,
    segment: str,
    distributor_id: str | None,
    utility_id: str | None,
    user_id: int,
    first: NewVersion,
    now: datetime,
) -> models.RoiScenario:
    """Insert a scenario and its version 1."""
    scenario = models.RoiScenario(
        name=name,
        customer_name=customer_name,
        segment=segment,
        distributor_id=distributor_id,
        utility_id=utility_id,
        created_by_id=user_id,
        created_at=now,
        updated_at=now,
        latest_version=1,
    )
    session.add(scenario)
    session.flush()
    _add_version(session, scenario, 1, first, user_id, now)
    return scenario


def add_version(
    session: Session,
    scenario: models.RoiScenario,
    new: NewVersion,
    user_id: int,
    now: datetime,
) -> models.RoiScenarioVersion:
    """Append the next version to a scenario (versions are never changed once written)."""
    number = scenario.latest_version + 1
    scenario.latest_version = number
    scenario.updated_at = now
    return _add_version(session, scenario, number, new, user_id, now)


def _add_version(
    session: Session,
    scenario: models.RoiScenario,
    number: int,
    new: NewVersion,
    user_id: int,
    now: datetime,
) -> models.RoiScenarioVersion:
    row = models.RoiScenarioVersion(
        scenario_id=scenario.id,
        version=number,
        model_version=new.model_version,
        document=new.document,
        changes=new.changes,
        note=new.note,
        npv=new.npv,
        created_by_id=user_id,
        created_at=now,
    )
    session.add(row)
    session.flush()
    return row


def visible_utilities(session: Session, scope: Scope) -> list[models.Utility]:
    """List the utilities a scope may see, for the calibration picker."""
    return list(
        session.scalars(
            select(models.Utility).where(utility_clause(scope)).order_by(models.Utility.name)
        )
    )


def get_utility(session: Session, scope: Scope, utility_id: str) -> models.Utility | None:
    """Return a utility if the scope may see it."""
    return session.scalars(
        select(models.Utility).where(models.Utility.id == utility_id, utility_clause(scope))
    ).first()


def site_locations(session: Session, utility_id: str) -> list[tuple[str, float, float]]:
    """Return (meter id, lat, lon) of a utility's meters (the caller has checked its scope)."""
    rows = session.execute(
        select(models.Meter.id, models.Meter.lat, models.Meter.lon)
        .where(models.Meter.utility_id == utility_id)
        .order_by(models.Meter.id)
    )
    return [(str(i), float(lat), float(lon)) for i, lat, lon in rows]


def fleet_profile(session: Session, utility: models.Utility) -> FleetProfile:
    """Gather a visible utility's counts, network mix and last-day read success."""
    networks = dict(
        session.execute(
            select(models.Meter.network, func.count())
            .where(models.Meter.utility_id == utility.id)
            .group_by(models.Meter.network)
        ).all()
    )
    meters = sum(networks.values())
    newest = session.scalar(
        select(func.max(models.Meter.last_interval_start)).where(
            models.Meter.utility_id == utility.id
        )
    )
    success: float | None = None
    if newest is not None and meters:
        # The segment pages' read success: reads, not VEE estimates, over what the meters'
        # call-in schedules owe by now (a daily meter's day waits for its call).
        reads, due = last_day_reads(session, {utility.id: newest})[utility.id]
        success = read_success(reads, due)
    return FleetProfile(
        utility_id=utility.id,
        utility_name=utility.name,
        segment=utility.segment,
        c_and_i_customers=utility.c_and_i_customers,
        modem_lines=utility.modem_lines,
        meters=meters,
        meters_by_network={str(k): int(v) for k, v in networks.items()},
        read_success=success,
    )
