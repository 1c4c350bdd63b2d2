"""SQLAlchemy 2.0 typed models: fleet, readings, events, dead letters, users and tenants."""

from __future__ import annotations

from datetime import UTC, datetime
from typing import Any, ClassVar

from sqlalchemy import (
    JSON,
    Boolean,
    DateTime,
    Dialect,
    Float,
    ForeignKey,
    Index,
    Integer,
    LargeBinary,
    MetaData,
    String,
    Text,
    TypeDecorator,
    UniqueConstraint,
)
from sqlalchemy.orm import DeclarativeBase, Mapped, mapped_column, relationship, validates

# Named constraints so Alembic migrations are stable across SQLite and PostgreSQL.
NAMING = {
    "ix": "ix_%(column_0_label)s",
    "uq": "uq_%(table_name)s_%(column_0_name)s",
    "ck": "ck_%(table_name)s_%(constraint_name)s",
    "fk": "fk_%(table_name)s_%(column_0_name)s_%(referred_table_name)s",
    "pk": "pk_%(table_name)s",
}


class UTCDateTime(TypeDecorator[datetime]):
    """Store aware UTC datetimes; SQLite keeps them naive, so re-attach UTC on the way out."""

    impl = DateTime(timezone=True)
    cache_ok = True

    def process_bind_param(self, value: datetime | None, dialect: Dialect) -> datetime | None:
        """Refuse naive datetimes and normalise to UTC."""
        if value is None:
            return None
        if value.tzinfo is None:
            raise ValueError("naive datetime given to a UTC column")
        value = value.astimezone(UTC)
        return value.replace(tzinfo=None) if dialect.name == "sqlite" else value

    def process_result_value(self, value: datetime | None, dialect: Dialect) -> datetime | None:
        """Return an aware UTC datetime."""
        if value is None:
            return None
        return value.replace(tzinfo=UTC) if value.tzinfo is None else value.astimezone(UTC)


class Base(DeclarativeBase):
    """Declarative base with the shared naming convention."""

    metadata = MetaData(naming_convention=NAMING)
    type_annotation_map: ClassVar[dict[Any, Any]] = {
        datetime: UTCDateTime(),
        dict[str, Any]: JSON(),
    }


class Distributor(Base):
    """A channel partner (tenant) that sells to utilities."""

    __tablename__ = "distributors"

    id: Mapped[str] = mapped_column(String(40), primary_key=True)
    name: Mapped[str] = mapped_column(String(120))
    territory: Mapped[str] = mapped_column(String(120), default="")


class Utility(Base):
    """A customer organisation in one segment, sold to by one distributor."""

    __tablename__ = "utilities"

    id: Mapped[str] = mapped_column(String(64), primary_key=True)
    name: Mapped[str] = mapped_column(String(120))
    segment: Mapped[str] = mapped_column(String(20), index=True)
    distributor_id: Mapped[str] = mapped_column(ForeignKey("distributors.id"), index=True)
    region: Mapped[str] = mapped_column(String(60), default="")
    c_and_i_customers: Mapped[int] = mapped_column(Integer, default=0)
    modem_lines: Mapped[int] = mapped_column(Integer, default=0)

    distributor: Mapped[Distributor] = relationship()


class Meter(Base):
    """A metered C&I site with a wireless endpoint."""

    __tablename__ = "meters"

    id: Mapped[str] = mapped_column(String(64), primary_key=True)
    utility_id: Mapped[str] = mapped_column(ForeignKey("utilities.id"), index=True)
    site_name: Mapped[str] = mapped_column(String(120))
    building_type: Mapped[str] = mapped_column(String(40))
    network: Mapped[str] = mapped_column(String(20))
    peak_kw: Mapped[float] = mapped_column(Float)
    phase_volts: Mapped[float] = mapped_column(Float)
    lat: Mapped[float] = mapped_column(Float)
    lon: Mapped[float] = mapped_column(Float)
    status: Mapped[str] = mapped_column(String(10), default="unknown")
    status_at: Mapped[datetime | None]
    last_interval_start: Mapped[datetime | None]
    last_seen_at: Mapped[datetime | None]

    utility: Mapped[Utility] = relationship()


class Reading(Base):
    """One stored 15-minute interval; (meter_id, start) is the idempotency key."""

    __tablename__ = "readings"

    # No foreign key to meters, here or on the rollups: PostgreSQL checks one row by one row,
    # and that check cost twice the rest of a COPY (6 of 9 µs a reading, measured). Only the
    # ingest, the importer and the backfill write here, each for meters it looked up, and
    # meters are never deleted.
    meter_id: Mapped[str] = mapped_column(String(64), primary_key=True)
    start: Mapped[datetime] = mapped_column(primary_key=True)
    kwh: Mapped[float] = mapped_column(Float)
    kvarh: Mapped[float] = mapped_column(Float)
    demand_kw: Mapped[float] = mapped_column(Float)
    voltage_a: Mapped[float | None] = mapped_column(Float)
    voltage_b: Mapped[float | None] = mapped_column(Float)
    voltage_c: Mapped[float | None] = mapped_column(Float)
    flags: Mapped[str] = mapped_column(String(120), default="")
    quality: Mapped[str] = mapped_column(String(24), default="valid")
    received_at: Mapped[datetime]


class RegisterRead(Base):
    """A cumulative register read an interval message carried; (meter_id, at) is the key."""

    __tablename__ = "register_reads"

    # No foreign key to meters, for the reason given on Reading: the ingest writes one row
    # a message, for meters it looked up.
    meter_id: Mapped[str] = mapped_column(String(64), primary_key=True)
    at: Mapped[datetime] = mapped_column(primary_key=True)
    kwh: Mapped[float] = mapped_column(Float)
    kvarh: Mapped[float] = mapped_column(Float)
    received_at: Mapped[datetime]


class Event(Base):
    """A meter event; (meter_id, event_id) makes redelivery harmless."""

    __tablename__ = "events"
    __table_args__ = (UniqueConstraint("meter_id", "event_id"),)

    id: Mapped[int] = mapped_column(Integer, primary_key=True, autoincrement=True)
    meter_id: Mapped[str] = mapped_column(ForeignKey("meters.id"), index=True)
    event_id: Mapped[str] = mapped_column(String(64))
    type: Mapped[str] = mapped_column(String(32))
    severity: Mapped[str] = mapped_column(String(10))
    at: Mapped[datetime] = mapped_column(index=True)
    details: Mapped[dict[str, Any]]
    # The live feed shows the newest arrivals first.
    received_at: Mapped[datetime] = mapped_column(index=True)


# A tenant's live feed takes each visible meter's newest events from here (live_queries).
Index(
    "ix_events_meter_received",
    Event.meter_id,
    Event.received_at.desc(),
    Event.id.desc(),
)
# A tenant's open alarms take each visible meter's newest alarm events from here.
Index("ix_events_meter_at", Event.meter_id, Event.at.desc(), Event.id.desc())


class DeadLetter(Base):
    """A message the ingest could not accept, kept raw with the reason."""

    __tablename__ = "dead_letters"

    id: Mapped[int] = mapped_column(Integer, primary_key=True, autoincrement=True)
    topic: Mapped[str] = mapped_column(Text)
    payload: Mapped[bytes] = mapped_column(LargeBinary)
    reason: Mapped[str] = mapped_column(Text)
    received_at: Mapped[datetime] = mapped_column(index=True)
    # The known meter the topic names, so tenants see their own dead letters (None: vendor only).
    meter_id: Mapped[str | None] = mapped_column(String(64), index=True)
    # When the payload was published again on its topic (`app.ingest.replay`); None: never.
    replayed_at: Mapped[datetime | None]


# A tenant's dead-letter page takes each visible meter's newest letters from here.
Index("ix_dead_letters_meter_newest", DeadLetter.meter_id, DeadLetter.id.desc())


class ServiceHeartbeat(Base):
    """The latest heartbeat of a long-running service (the portal reads broker health here)."""

    __tablename__ = "service_heartbeats"

    name: Mapped[str] = mapped_column(String(64), primary_key=True)
    broker_connected: Mapped[bool] = mapped_column(Boolean, default=False)
    updated_at: Mapped[datetime]
    details: Mapped[dict[str, Any]]


class User(Base):
    """A portal login with a role and, for tenants, the distributor or utility it belongs to."""

    __tablename__ = "users"

    id: Mapped[int] = mapped_column(Integer, primary_key=True, autoincrement=True)
    email: Mapped[str] = mapped_column(String(254), unique=True)
    name: Mapped[str] = mapped_column(String(120))
    password_hash: Mapped[str] = mapped_column(String(256))
    role: Mapped[str] = mapped_column(String(32))
    distributor_id: Mapped[str | None] = mapped_column(ForeignKey("distributors.id"))
    utility_id: Mapped[str | None] = mapped_column(ForeignKey("utilities.id"))
    active: Mapped[bool] = mapped_column(Boolean, default=True)

    @validates("email")
    def _lower(self, _key: str, email: str) -> str:
        """Store e-mail addresses in lower case, so the unique constraint ignores case."""
        # Mail systems treat the local part case-insensitively in practice; a login that
        # differed only in case from another would be the same person, or an impostor.
        return email.strip().lower()


class Login(Base):
    """One browser session or API token a user holds; deleting the row ends just that one."""

    __tablename__ = "logins"

    # Random and unguessable, though it only ever travels inside a signed cookie or token.
    id: Mapped[str] = mapped_column(String(64), primary_key=True)
    user_id: Mapped[int] = mapped_column(ForeignKey("users.id", ondelete="CASCADE"), index=True)
    kind: Mapped[str] = mapped_column(String(8))  # session | token
    created_at: Mapped[datetime]
    expires_at: Mapped[datetime] = mapped_column(index=True)


class LoginFailure(Base):
    """A failed login, kept for the throttle's window: by the e-mail tried and the address."""

    __tablename__ = "login_failures"

    id: Mapped[int] = mapped_column(Integer, primary_key=True, autoincrement=True)
    at: Mapped[datetime] = mapped_column(index=True)
    email: Mapped[str] = mapped_column(String(254))
    address: Mapped[str] = mapped_column(String(64))


Index("ix_login_failures_email_at", LoginFailure.email, LoginFailure.at)
Index("ix_login_failures_address_at", LoginFailure.address, LoginFailure.at)


# Rows arrive in received_at order, so a BRIN index (a few pages) answers "received since"
# as well as a B-tree that cost 1.5 µs a reading to maintain; SQLite has only B-trees.
# Time windows across the fleet are read from the rollups, and per-meter windows from the
# primary key, so `start` needs no index of its own.
Index("ix_readings_received_at", Reading.received_at, postgresql_using="brin")


class AlarmAck(Base):
    """An operator's acknowledgement of one alarm, found again by the alarm's stable key."""

    __tablename__ = "alarm_acks"

    key: Mapped[str] = mapped_column(String(160), primary_key=True)
    meter_id: Mapped[str] = mapped_column(ForeignKey("meters.id"), index=True)
    user_id: Mapped[int] = mapped_column(ForeignKey("users.id"))
    at: Mapped[datetime]
    note: Mapped[str] = mapped_column(Text, default="")


class AuditEntry(Base):
    """Who did what to which object: alarm acknowledgements, commands, demo controls."""

    __tablename__ = "audit_log"

    id: Mapped[int] = mapped_column(Integer, primary_key=True, autoincrement=True)
    at: Mapped[datetime] = mapped_column(index=True)
    user_id: Mapped[int | None] = mapped_column(ForeignKey("users.id"))
    actor: Mapped[str] = mapped_column(String(254))
    action: Mapped[str] = mapped_column(String(40))
    target: Mapped[str] = mapped_column(String(160))
    # The tenant the target belongs to, so each user sees only their own tenants' audit.
    utility_id: Mapped[str | None] = mapped_column(ForeignKey("utilities.id"), index=True)
    details: Mapped[dict[str, Any]]


# A tenant's audit list takes each visible utility's newest entries from here.
Index(
    "ix_audit_log_utility_newest",
    AuditEntry.utility_id,
    AuditEntry.at.desc(),
    AuditEntry.id.desc(),
)


class RoiScenario(Base):
    """A saved ROI model for one customer, owned by a distributor (or by the vendor when None)."""

    __tablename__ = "roi_scenarios"

    id: Mapped[int] = mapped_column(Integer, primary_key=True, autoincrement=True)
    name: Mapped[str] = mapped_column(String(120))
    customer_name: Mapped[str] = mapped_column(String(120))
    segment: Mapped[str] = mapped_column(String(20))
    # The tenant: a distributor sees only its own scenarios; NULL means vendor-only.
    distributor_id: Mapped[str | None] = mapped_column(ForeignKey("distributors.id"), index=True)
    utility_id: Mapped[str | None] = mapped_column(ForeignKey("utilities.id"))
    created_by_id: Mapped[int] = mapped_column(ForeignKey("users.id"))
    created_at: Mapped[datetime]
    updated_at: Mapped[datetime]
    latest_version: Mapped[int] = mapped_column(Integer, default=1)


class RoiScenarioVersion(Base):
    """One immutable version of a scenario: the full input document, who saved it and what changed."""

    __tablename__ = "roi_scenario_versions"
    __table_args__ = (UniqueConstraint("scenario_id", "version"),)

    id: Mapped[int] = mapped_column(Integer, primary_key=True, autoincrement=True)
    scenario_id: Mapped[int] = mapped_column(ForeignKey("roi_scenarios.id"), index=True)
    version: Mapped[int] = mapped_column(Integer)
    model_version: Mapped[str] = mapped_column(String(20))
    # The complete document (every input with value, unit, source and range), so a report
    # can be rebuilt exactly from this row alone.
    document: Mapped[dict[str, Any]]
    changes: Mapped[dict[str, Any]]
    note: Mapped[str] = mapped_column(Text, default="")
    npv: Mapped[float] = mapped_column(Float)
    created_by_id: Mapped[int] = mapped_column(ForeignKey("users.id"))
    created_at: Mapped[datetime]


class MeterCommand(Base):
    """A command sent to a meter from the portal or API, and the meter's latest reply."""

    __tablename__ = "meter_commands"

    id: Mapped[str] = mapped_column(String(64), primary_key=True)
    meter_id: Mapped[str] = mapped_column(ForeignKey("meters.id"), index=True)
    command: Mapped[str] = mapped_column(String(32))
    args: Mapped[dict[str, Any]]
    # pending -> accepted -> ok | error (a reply's status), or error if never sent.
    status: Mapped[str] = mapped_column(String(12), default="pending")
    result: Mapped[Any | None] = mapped_column(JSON, nullable=True)
    requested_by: Mapped[int | None] = mapped_column(ForeignKey("users.id"))
    requested_at: Mapped[datetime] = mapped_column(index=True)
    replied_at: Mapped[datetime | None]


# ---------------------------------------------------------------- meter data management


# Estimated rows are few; this partial index lets the ingest find the ones a batch replaces
# without scanning the actual readings around them.
Index(
    "ix_readings_estimated",
    Reading.meter_id,
    Reading.start,
    sqlite_where=Reading.quality.in_(["estimated-linear", "estimated-reference-day"]),
    postgresql_where=Reading.quality.in_(["estimated-linear", "estimated-reference-day"]),
)


class ReadingAudit(Base):
    """One change to a stored interval (an actual replacing an estimate, an edit, an import)."""

    __tablename__ = "reading_audit"
    __table_args__ = (Index("ix_reading_audit_meter_start", "meter_id", "start"),)

    id: Mapped[int] = mapped_column(Integer, primary_key=True, autoincrement=True)
    meter_id: Mapped[str] = mapped_column(ForeignKey("meters.id"))
    start: Mapped[datetime]
    changed_at: Mapped[datetime] = mapped_column(index=True)
    source: Mapped[str] = mapped_column(String(24))
    old_kwh: Mapped[float | None] = mapped_column(Float)
    old_demand_kw: Mapped[float | None] = mapped_column(Float)
    old_quality: Mapped[str | None] = mapped_column(String(24))
    # None: the change removed the stored value (VEE withdrawing an estimate it can no
    # longer make).
    new_kwh: Mapped[float | None] = mapped_column(Float)
    new_demand_kw: Mapped[float | None] = mapped_column(Float)
    new_quality: Mapped[str | None] = mapped_column(String(24))
    # kVArh since migration 0010; changes recorded before it have none.
    old_kvarh: Mapped[float | None] = mapped_column(Float)
    new_kvarh: Mapped[float | None] = mapped_column(Float)


class _RollupColumns:
    """Columns shared by the hourly and daily rollups."""

    # No foreign key: see Reading.
    meter_id: Mapped[str] = mapped_column(String(64), primary_key=True)
    start: Mapped[datetime] = mapped_column(primary_key=True)
    kwh: Mapped[float] = mapped_column(Float)
    kvarh: Mapped[float] = mapped_column(Float)
    peak_kw: Mapped[float] = mapped_column(Float)
    peak_at: Mapped[datetime]
    power_factor: Mapped[float | None] = mapped_column(Float)
    intervals: Mapped[int] = mapped_column(Integer)
    valid: Mapped[int] = mapped_column(Integer)
    estimated: Mapped[int] = mapped_column(Integer)
    questionable: Mapped[int] = mapped_column(Integer)
    edited: Mapped[int] = mapped_column(Integer)


class HourlyRollup(_RollupColumns, Base):
    """One meter's UTC hour: kWh, kVArh, peak demand and its time, PF, quality counts."""

    __tablename__ = "readings_hourly"
    # Fleet-wide charts, alarms and completeness read one time window across every meter:
    # with the meter, energy, count and read counts in the index they are answered from it
    # alone.
    __table_args__ = (
        Index(
            "ix_readings_hourly_start_meter",
            "start",
            "meter_id",
            "kwh",
            "kvarh",
            "intervals",
            "valid",
            "questionable",
        ),
    )


class DailyRollup(_RollupColumns, Base):
    """One meter's local day (start = local midnight in UTC; 23-25 hours on DST days)."""

    __tablename__ = "readings_daily"


# --- Channel workspace (partners issue) -------------------------------------------------


class PartnerProfile(Base):
    """A partner or partner candidate in the registry, with its evaluation attributes."""

    __tablename__ = "partner_profiles"

    id: Mapped[str] = mapped_column(String(40), primary_key=True)
    name: Mapped[str] = mapped_column(String(120))
    partner_type: Mapped[str] = mapped_column(String(24))
    tier: Mapped[str] = mapped_column(String(10))
    status: Mapped[str] = mapped_column(String(12), default="candidate")
    distributor_id: Mapped[str | None] = mapped_column(ForeignKey("distributors.id"), unique=True)
    territory: Mapped[list[str]] = mapped_column(JSON)
    segments: Mapped[list[str]] = mapped_column(JSON)
    utility_customers: Mapped[int] = mapped_column(Integer, default=0)
    sales_reps: Mapped[int] = mapped_column(Integer, default=0)
    avg_rep_tenure_years: Mapped[float] = mapped_column(Float, default=0.0)
    compensation_plan: Mapped[str] = mapped_column(String(200), default="")
    compensation_alignment: Mapped[float] = mapped_column(Float, default=3.0)
    network_fit: Mapped[float] = mapped_column(Float, default=3.0)
    mdm_fit: Mapped[float] = mapped_column(Float, default=3.0)
    vendor_neutrality: Mapped[float] = mapped_column(Float, default=3.0)


class Prospect(Base):
    """A potential customer by segment, routed to the partner that covers it."""

    __tablename__ = "prospects"

    id: Mapped[str] = mapped_column(String(64), primary_key=True)
    name: Mapped[str] = mapped_column(String(120))
    segment: Mapped[str] = mapped_column(String(20), index=True)
    region: Mapped[str] = mapped_column(String(10))
    c_and_i_customers: Mapped[int] = mapped_column(Integer, default=0)
    modem_lines: Mapped[int] = mapped_column(Integer, default=0)
    buildings: Mapped[int] = mapped_column(Integer, default=0)
    meter_readers: Mapped[int] = mapped_column(Integer, default=0)
    distributor_id: Mapped[str | None] = mapped_column(ForeignKey("distributors.id"), index=True)
    routing_reason: Mapped[str] = mapped_column(Text, default="")
    created_at: Mapped[datetime]


class Deal(Base):
    """A registered deal: one partner's claim on one customer, through its lifecycle."""

    __tablename__ = "deals"

    id: Mapped[int] = mapped_column(Integer, primary_key=True, autoincrement=True)
    distributor_id: Mapped[str] = mapped_column(ForeignKey("distributors.id"), index=True)
    rep_id: Mapped[int | None] = mapped_column(ForeignKey("users.id"))
    prospect_id: Mapped[str | None] = mapped_column(ForeignKey("prospects.id"))
    utility_name: Mapped[str] = mapped_column(String(120))
    utility_key: Mapped[str] = mapped_column(String(120), index=True)
    segment: Mapped[str] = mapped_column(String(20))
    region: Mapped[str] = mapped_column(String(10))
    endpoints: Mapped[int] = mapped_column(Integer, default=0)
    term_months: Mapped[int] = mapped_column(Integer, default=36)
    status: Mapped[str] = mapped_column(String(16), index=True)
    note: Mapped[str] = mapped_column(Text, default="")
    created_at: Mapped[datetime]
    updated_at: Mapped[datetime]
    first_response_at: Mapped[datetime | None]
    approved_at: Mapped[datetime | None]
    roi_requested_at: Mapped[datetime | None]
    roi_delivered_at: Mapped[datetime | None]
    proposal_at: Mapped[datetime | None]
    closed_at: Mapped[datetime | None]
    roi_inputs: Mapped[dict[str, Any] | None] = mapped_column(JSON)
    roi_result: Mapped[dict[str, Any] | None] = mapped_column(JSON)
    roi_requested_by: Mapped[int | None] = mapped_column(ForeignKey("users.id"))
    roi_evaluated_by: Mapped[int | None] = mapped_column(ForeignKey("users.id"))

    distributor: Mapped[Distributor] = relationship()


class DealEvent(Base):
    """One timestamped step in a deal's history."""

    __tablename__ = "deal_events"

    id: Mapped[int] = mapped_column(Integer, primary_key=True, autoincrement=True)
    deal_id: Mapped[int] = mapped_column(ForeignKey("deals.id"), index=True)
    at: Mapped[datetime]
    actor_id: Mapped[int | None] = mapped_column(ForeignKey("users.id"))
    action: Mapped[str] = mapped_column(String(32))
    detail: Mapped[str] = mapped_column(Text, default="")


class RfxDocument(Base):
    """A customer's RFI/RFQ shared by a distributor, to be answered by the vendor."""

    __tablename__ = "rfx_documents"

    id: Mapped[int] = mapped_column(Integer, primary_key=True, autoincrement=True)
    distributor_id: Mapped[str] = mapped_column(ForeignKey("distributors.id"), index=True)
    deal_id: Mapped[int | None] = mapped_column(ForeignKey("deals.id"))
    title: Mapped[str] = mapped_column(String(200))
    created_at: Mapped[datetime]
    created_by: Mapped[int | None] = mapped_column(ForeignKey("users.id"))


class RfxRequirement(Base):
    """One requirement of an RFI/RFQ and the vendor's answer."""

    __tablename__ = "rfx_requirements"

    id: Mapped[int] = mapped_column(Integer, primary_key=True, autoincrement=True)
    rfx_id: Mapped[int] = mapped_column(ForeignKey("rfx_documents.id"), index=True)
    position: Mapped[int] = mapped_column(Integer)
    text: Mapped[str] = mapped_column(Text)
    answer: Mapped[str] = mapped_column(Text, default="")
    compliance: Mapped[str] = mapped_column(String(10), default="")
    answered_at: Mapped[datetime | None]
    answered_by: Mapped[int | None] = mapped_column(ForeignKey("users.id"))


class LibraryAnswer(Base):
    """A reusable vendor answer for RFIs/RFQs."""

    __tablename__ = "rfx_answers"

    id: Mapped[int] = mapped_column(Integer, primary_key=True, autoincrement=True)
    question: Mapped[str] = mapped_column(Text)
    answer: Mapped[str] = mapped_column(Text)
    compliance: Mapped[str] = mapped_column(String(10))
    updated_at: Mapped[datetime]
