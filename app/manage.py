"""Operator commands: `python -m app.manage migrate | seed-demo | create-user | rebuild-rollups | replay-dead-letters`."""

from __future__ import annotations

import time
from datetime import UTC, datetime, timedelta

import click
from email_validator import EmailNotValidError, validate_email
from rich.progress import Progress
from sqlalchemy import func, or_, select
from sqlalchemy.exc import OperationalError
from sqlalchemy.orm import Session, sessionmaker
from werkzeug.security import generate_password_hash

from app.clitypes import MAX_DAYS, run
from app.command_bus import CommandBus, CommandBusError
from app.config import Settings
from app.db import migrate as migrations
from app.db import models
from app.db.logins import close_all
from app.db.seed import DEMO_EMAILS, seed_fleet, seed_partners, seed_users
from app.db.session import make_engine, make_sessionmaker
from app.domain.access import AccessError, Role, scope_for
from app.ingest import rollups
from app.ingest.replay import limits as replay_limits
from app.ingest.replay import refusal, replay
from app.ingest.store import MeterDirectory
from simulator.fleet import build_fleet


@click.group()
def cli() -> None:
    """Manage the Wattline database."""


@cli.command()
def migrate() -> None:
    """Migrate the database in DATABASE_URL to the latest schema."""
    settings = Settings.from_env()
    migrations.upgrade(settings.database_url)
    click.echo("database migrated")


@cli.command("seed-demo")
@click.option(
    "--meters", type=click.IntRange(min=1), envvar="DEMO_METERS", default=200, show_default=True
)
@click.option("--seed", type=int, envvar="DEMO_SEED", default=42, show_default=True)
def seed_demo(meters: int, seed: int) -> None:
    """Load the simulated fleet and the demo logins (demo mode only)."""
    settings = Settings.from_env()
    if not settings.demo_mode:
        raise click.UsageError("demo logins exist only in demo mode: set WATTLINE_DEMO=1")
    engine = make_engine(settings.database_url)
    with make_sessionmaker(engine).begin() as session:
        added = seed_fleet(session, build_fleet(meters, seed))
        seed_users(session, settings.demo_password)
        deals = seed_partners(session, datetime.now(UTC))
    engine.dispose()
    click.echo(f"seeded {added} new meters, the demo logins and {deals} new demo deals")


MIN_PASSWORD = 12


@cli.command("create-user")
@click.option("--email", required=True, help="the login")
@click.option("--name", required=True, help="shown in the portal and the audit log")
@click.option("--role", type=click.Choice([r.value for r in Role]), required=True)
@click.option("--distributor", default=None, help="distributor id (distributor roles)")
@click.option("--utility", default=None, help="utility id (utility viewer, building manager)")
@click.password_option(
    envvar="WATTLINE_USER_PASSWORD",
    help=f"at least {MIN_PASSWORD} characters; prompted for (twice) when not given",
)
def create_user(
    email: str, name: str, role: str, distributor: str | None, utility: str | None, password: str
) -> None:
    """Create a portal login, or reset an existing one's password, role and tenant."""
    try:
        email = validate_email(email, check_deliverability=False).normalized
    except EmailNotValidError as exc:
        raise click.BadParameter(str(exc), param_hint="--email") from None
    if email.lower() in DEMO_EMAILS:
        raise click.BadParameter(
            "is a demo login (its password is published; it works only in demo mode)",
            param_hint="--email",
        )
    if len(password) < MIN_PASSWORD:
        raise click.BadParameter(
            f"needs at least {MIN_PASSWORD} characters", param_hint="--password"
        )
    try:
        scope = scope_for(role, distributor, utility)
    except AccessError as exc:
        raise click.UsageError(f"{exc} (--distributor / --utility)") from None
    # A tenant the role does not use would be stored and never read: refuse it instead.
    if distributor and scope.distributor_id is None:
        raise click.UsageError(f"role {role} has no distributor; drop --distributor")
    if utility and scope.utility_id is None:
        raise click.UsageError(f"role {role} has no utility; drop --utility")
    settings = Settings.from_env()
    engine = make_engine(settings.database_url)
    try:
        with make_sessionmaker(engine).begin() as session:
            if distributor and session.get(models.Distributor, distributor) is None:
                raise click.BadParameter(
                    f"no distributor {distributor!r}", param_hint="--distributor"
                )
            if utility and session.get(models.Utility, utility) is None:
                raise click.BadParameter(f"no utility {utility!r}", param_hint="--utility")
            found = session.scalar(select(models.User).where(models.User.email == email.lower()))
            user = found or models.User(email=email)
            user.name = name
            user.role = role
            user.distributor_id = distributor
            user.utility_id = utility
            user.active = True
            user.password_hash = generate_password_hash(password)
            session.add(user)
            # A new password ends every session and token the old one opened.
            ended = close_all(session, found.id) if found is not None else 0
    finally:
        engine.dispose()
    click.echo(f"{'updated' if found else 'created'} {email} ({role})")
    if ended:
        click.echo(f"ended its {ended} open login{'' if ended == 1 else 's'} (sessions and tokens)")


@cli.command("rebuild-rollups")
@click.option(
    "--meter",
    "meter_ids",
    multiple=True,
    help="Rebuild only this meter (repeat for several); default: every meter.",
)
@click.option(
    "--chunk",
    type=click.IntRange(min=1),
    default=50,
    show_default=True,
    help="Meters per transaction.",
)
@click.option(
    "--days",
    type=click.IntRange(min=1, max=MAX_DAYS),
    default=7,
    show_default=True,
    help="Days per transaction (each holds the rollup tables' write lock while it runs).",
)
def rebuild_rollups(meter_ids: tuple[str, ...], chunk: int, days: int) -> None:
    """Recompute hourly and daily rollups from the stored intervals; safe beside the ingest."""
    settings = Settings.from_env()
    engine = make_engine(settings.database_url)
    sessions = make_sessionmaker(engine)
    meters = MeterDirectory()
    with sessions() as session:
        meters.refresh(session)
    unknown = sorted(set(meter_ids) - set(meters.zones))
    if unknown:
        engine.dispose()
        raise click.BadParameter(f"no such meter: {', '.join(unknown)}", param_hint="--meter")
    ids = sorted(set(meter_ids) or meters.zones)
    hourly = daily = 0
    step = timedelta(days=days)
    with Progress(transient=True) as progress:
        task = progress.add_task("rebuilding rollups", total=len(ids))
        for at in range(0, len(ids), chunk):
            part = ids[at : at + chunk]
            with sessions() as session:
                span = rollups.rebuild_span(session, part)
            if span is not None:
                # Windows from UTC midnight, in time order (see `rollups.rebuild`).
                first = span[0].replace(hour=0, minute=0, second=0, microsecond=0)
                while first < span[1]:
                    _rebuild_window(sessions, part, meters, first, first + step)
                    first += step
                with sessions() as session:
                    h, d = rollups.count(session, part)
                hourly += h
                daily += d
            progress.advance(task, len(part))
    engine.dispose()
    click.echo(f"rebuilt {hourly:,} hourly and {daily:,} daily rollups of {len(ids):,} meters")


def _rebuild_window(
    sessions: sessionmaker[Session],
    part: list[str],
    meters: MeterDirectory,
    first: datetime,
    end: datetime,
) -> None:
    for attempt in range(1, 6):
        try:
            with sessions.begin() as session:
                rollups.rebuild(session, part, meters.zones, first, end)
            return
        except OperationalError as exc:
            # A deadlock or serialization failure (SQLSTATE class 40) rolled the window back;
            # nothing of it was written, so it runs again.
            state = getattr(exc.orig, "sqlstate", None) or ""
            if not state.startswith("40") or attempt == 5:
                raise
            time.sleep(0.1 * attempt)


@cli.command("replay-dead-letters")
@click.option("--id", "letter_ids", type=int, multiple=True, help="This dead letter (repeatable).")
@click.option("--meter", "meter_ids", multiple=True, help="Dead letters on this meter's topics.")
@click.option("--reason", help="Dead letters whose reason contains this text (any case).")
@click.option("--all", "everything", is_flag=True, help="Every dead letter not yet replayed.")
@click.option("--again", is_flag=True, help="Include letters replayed before.")
def replay_dead_letters(
    letter_ids: tuple[int, ...],
    meter_ids: tuple[str, ...],
    reason: str | None,
    everything: bool,
    again: bool,
) -> None:
    """Publish dead letters again on their topics (QoS 1) for the ingest, oldest first.

    Only letters refused for a cause outside the message (an unknown meter, a failed
    write), of intervals and events, possible when first received (docs/mdm.md).
    """
    if not (letter_ids or meter_ids or reason or everything):
        raise click.UsageError("say which dead letters: --id, --meter, --reason or --all")
    settings = Settings.from_env()
    if settings.mqtt_url is None:
        raise click.UsageError("MQTT_URL is not set: replaying publishes to the broker")
    letter = models.DeadLetter
    query = select(letter).order_by(letter.id)
    if letter_ids:
        query = query.where(letter.id.in_(letter_ids))
    if meter_ids:
        # A letter for a meter unknown then names no meter; its topic does (`…/meter/kind`).
        query = query.where(
            or_(
                letter.meter_id.in_(meter_ids),
                *(letter.topic.contains(f"/{m}/", autoescape=True) for m in meter_ids),
            )
        )
    if reason:
        query = query.where(letter.reason.icontains(reason, autoescape=True))
    if not again:
        query = query.where(letter.replayed_at.is_(None))
    rules = replay_limits(settings)
    engine = make_engine(settings.database_url)
    sessions = make_sessionmaker(engine)
    bus = CommandBus(settings.mqtt_url, settings.topic_prefix)
    done = skipped = 0
    try:
        with sessions() as session:
            # Letters a replay dead-letters again are new rows: not replayed in the same run.
            newest = session.scalar(select(func.max(letter.id))) or 0
        last = 0
        while True:
            with sessions() as session:
                page = list(
                    session.scalars(query.where(letter.id > last, letter.id <= newest).limit(500))
                )
                if not page:
                    break
                last = page[-1].id
                for found in page:
                    why = refusal(found, settings.topic_prefix, rules)
                    if why is not None:
                        skipped += 1
                        click.echo(f"dead letter {found.id} not replayed: {why}", err=True)
                        continue
                    try:
                        done += replay([found], bus.publish, datetime.now(UTC))
                    except CommandBusError as exc:
                        raise click.ClickException(
                            f"stopped after {done:,} replayed: {exc}"
                        ) from exc
                    # Each one committed as soon as the broker holds it.
                    session.commit()
    finally:
        bus.close()
        engine.dispose()
    click.echo(f"replayed {done:,} dead letters; {skipped:,} not replayable")


if __name__ == "__main__":
    run(cli)
