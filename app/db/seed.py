"""Load the simulated fleet and the demo logins into the database (idempotent)."""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass

from sqlalchemy import select
from sqlalchemy.orm import Session
from werkzeug.security import generate_password_hash

from app.db import models
from app.domain.access import Role
from simulator import fleet


@dataclass(frozen=True, slots=True)
class DemoLogin:
    """A demo account printed by `make demo`."""

    email: str
    name: str
    role: Role
    distributor_id: str | None = None
    utility_id: str | None = None


DEMO_LOGINS: tuple[DemoLogin, ...] = (
    DemoLogin("admin@wattline.example", "Avery Admin", Role.VENDOR_ADMIN),
    DemoLogin("se@wattline.example", "Sam Sales-Engineer", Role.VENDOR_SE),
    DemoLogin(
        "manager@northgrid.example", "Morgan NorthGrid", Role.DISTRIBUTOR_MANAGER, "northgrid"
    ),
    DemoLogin("rep@northgrid.example", "Riley NorthGrid", Role.DISTRIBUTOR_REP, "northgrid"),
    DemoLogin("rep@prairiemeter.example", "Parker Prairie", Role.DISTRIBUTOR_REP, "prairiemeter"),
    DemoLogin("ops@millbrook.example", "Mo Millbrook", Role.UTILITY_VIEWER, utility_id="millbrook"),
    DemoLogin(
        "facilities@fedcenter.example",
        "Fran Facilities",
        Role.BUILDING_MANAGER,
        utility_id="fedcenter",
    ),
)


def seed_fleet(session: Session, meters: Sequence[fleet.Meter]) -> int:
    """Insert distributors, utilities and any missing meters; return how many meters were added."""
    for d in fleet.DISTRIBUTORS:
        session.merge(models.Distributor(id=d.id, name=d.name, territory=d.territory))
    for u in fleet.UTILITIES:
        session.merge(
            models.Utility(
                id=u.id,
                name=u.name,
                segment=u.segment,
                distributor_id=u.distributor_id,
                region=u.region,
                c_and_i_customers=u.c_and_i_customers,
                modem_lines=u.modem_lines,
            )
        )
    session.flush()
    existing = set(session.scalars(select(models.Meter.id)))
    added = [
        models.Meter(
            id=m.id,
            utility_id=m.utility_id,
            site_name=m.site_name,
            building_type=m.building_type,
            network=m.network,
            peak_kw=m.peak_kw,
            phase_volts=m.phase_volts,
            lat=m.lat,
            lon=m.lon,
        )
        for m in meters
        if m.id not in existing
    ]
    session.add_all(added)
    return len(added)


def seed_users(session: Session, password: str, logins: Sequence[DemoLogin] = DEMO_LOGINS) -> None:
    """Create (or reset the password of) the demo logins."""
    by_email = {u.email: u for u in session.scalars(select(models.User))}
    # One scrypt hash for all: they share the published demo password anyway, and it
    # keeps seeding fast (each hash costs ~0.1 s by design).
    password_hash = generate_password_hash(password)
    for login in logins:
        user = by_email.get(login.email) or models.User(email=login.email)
        user.name = login.name
        user.role = login.role.value
        user.distributor_id = login.distributor_id
        user.utility_id = login.utility_id
        user.active = True
        user.password_hash = password_hash
        session.add(user)
