"""Database adapter: models, engine/session helpers, migrations and repositories."""
