"""One Alembic history that matches the models, on SQLite and PostgreSQL."""

from __future__ import annotations

from alembic.autogenerate import compare_metadata
from alembic.runtime.migration import MigrationContext

import suanwang.db.models  # noqa: F401  (registers every table)
from suanwang.db.base import Base
from suanwang.db.session import current_revision, upgrade


def test_migrations_reach_head_and_match_the_models(db_url, engine):
    upgrade(db_url)  # idempotent at head
    assert current_revision(db_url) is not None
    with engine.connect() as connection:
        context = MigrationContext.configure(connection, opts={"compare_type": True})
        diff = compare_metadata(context, Base.metadata)
    assert diff == [], f"models and migrations differ; add a migration: {diff}"
