"""Alembic environment: online migrations against the configured URL."""

from __future__ import annotations

from alembic import context

from app.db.models import Base
from app.db.partitions import include_object
from app.db.session import make_engine

config = context.config
url = config.get_main_option("sqlalchemy.url")
if url is None:
    raise RuntimeError("sqlalchemy.url is not set; use app.db.migrate")

connectable = make_engine(url, create=True)  # a new SQLite file is what migrate makes
try:
    with connectable.connect() as connection:
        context.configure(
            connection=connection,
            target_metadata=Base.metadata,
            render_as_batch=connection.dialect.name == "sqlite",
            compare_type=True,
            include_object=include_object,
        )
        with context.begin_transaction():
            context.run_migrations()
finally:
    # Also when a migration refuses: its pooled connection would be left open.
    connectable.dispose()
