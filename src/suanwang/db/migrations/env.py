"""Alembic environment: runs on the connection handed over by suanwang.db.session.upgrade or on the URL."""

from __future__ import annotations

from alembic import context
from sqlalchemy import create_engine

import suanwang.db.models  # noqa: F401  (registers every table on Base.metadata)
from suanwang.db.base import Base

config = context.config
target_metadata = Base.metadata


def _run(connection) -> None:  # type: ignore[no-untyped-def]
    context.configure(
        connection=connection,
        target_metadata=target_metadata,
        render_as_batch=connection.dialect.name == "sqlite",
        compare_type=True,
    )
    with context.begin_transaction():
        context.run_migrations()


connection = config.attributes.get("connection")
if connection is not None:
    _run(connection)
else:
    engine = create_engine(config.get_main_option("sqlalchemy.url"))
    with engine.begin() as conn:
        _run(conn)
