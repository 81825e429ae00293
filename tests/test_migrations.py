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


def test_the_registry_migration_seeds_the_chain_and_keeps_existing_tiers(tmp_path):
    """0007 on a database that already has registry rows: the taxonomy is seeded and each enterprise's
    tier becomes the first entry of its tier history."""
    from sqlalchemy import create_engine, text

    url = f"sqlite:///{tmp_path / 'old.db'}"
    upgrade(url, "0006")
    engine = create_engine(url)
    with engine.begin() as conn:
        conn.execute(
            text(
                "INSERT INTO enterprises (id, credit_code, name, locality_code, segments, tier,"
                " tier_granted_on, created_at, updated_at) VALUES"
                " (1, '91330482MA2JD00017', 'x', '330482', '[]',"
                " 'specialised_sme', '2022-12-01', '2026-01-05 08:00:00', '2026-01-05 08:00:00'),"
                " (2, '91330482MA2JD0002A', 'y', '330482', '[]', 'innovative_sme', NULL,"
                " '2026-02-01 08:00:00', '2026-02-01 08:00:00')"
            )
        )
    upgrade(url)
    with engine.connect() as conn:
        tiers = conn.execute(
            text("SELECT enterprise_id, tier, granted_on FROM enterprise_tiers ORDER BY 1")
        ).all()
        segments = conn.execute(text("SELECT count(*) FROM chain_segments")).scalar()
        above = conn.execute(text("SELECT above_size FROM enterprises WHERE id = 1")).scalar()
    assert [tuple(t) for t in tiers] == [
        (1, "specialised_sme", "2022-12-01"),
        (2, "innovative_sme", "2026-02-01"),
    ]
    assert segments == 28 and above == 0
