"""Alembic migrations build exactly the schema the models describe, on SQLite and PostgreSQL."""

from __future__ import annotations

from alembic.autogenerate import compare_metadata
from alembic.migration import MigrationContext

from app.db.models import Base
from app.db.partitions import include_object
from app.db.session import make_engine


def test_migrated_schema_matches_the_models(database_url: str) -> None:
    engine = make_engine(database_url)
    with engine.connect() as conn:
        diff = compare_metadata(
            MigrationContext.configure(
                conn, opts={"compare_type": True, "include_object": include_object}
            ),
            Base.metadata,
        )
    engine.dispose()
    assert diff == []


def test_downgrade_to_base_and_back(tmp_path: object) -> None:
    from pathlib import Path

    from alembic import command
    from sqlalchemy import inspect

    from app.db.migrate import alembic_config, upgrade

    url = f"sqlite:///{Path(str(tmp_path)) / 'm.db'}"
    upgrade(url)
    command.downgrade(alembic_config(url), "base")
    engine = make_engine(url)
    assert set(inspect(engine).get_table_names()) == {"alembic_version"}
    engine.dispose()
    upgrade(url)
    engine = make_engine(url)
    assert "readings" in inspect(engine).get_table_names()
    engine.dispose()
