"""Operator commands: `python -m app.manage migrate | seed-demo`."""

from __future__ import annotations

from datetime import UTC, datetime

import click

from app.config import Settings
from app.db import migrate as migrations
from app.db.seed import seed_fleet, seed_partners, seed_users
from app.db.session import make_engine, make_sessionmaker
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


if __name__ == "__main__":
    cli()
