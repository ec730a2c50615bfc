"""Alembic environment. Run through ``pro-service db upgrade`` (see pro_service/migrate.py)."""

from __future__ import annotations

from alembic import context

from pro_service import models  # noqa: F401  (registers the tables on Base.metadata)
from pro_service.db import Base

config = context.config
target_metadata = Base.metadata


def run_migrations_online() -> None:
    connection = config.attributes["connection"]
    context.configure(
        connection=connection,
        target_metadata=target_metadata,
        render_as_batch=connection.dialect.name == "sqlite",
        compare_type=True,
    )
    with context.begin_transaction():
        context.run_migrations()


if context.is_offline_mode():
    raise SystemExit("offline migrations are not supported; run `pro-service db upgrade`")
run_migrations_online()
