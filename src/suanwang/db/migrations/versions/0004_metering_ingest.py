"""metering ingestion: usage records keep the backend's own id; the (source, id) of every usage event seen

Revision ID: 0004
Revises: 0003
Create Date: 2026-11-27 10:00:00.000000
"""

from collections.abc import Sequence

import sqlalchemy as sa
from alembic import op

import suanwang.db.base

revision: str = "0004"
down_revision: str | None = "0003"
branch_labels: str | Sequence[str] | None = None
depends_on: str | Sequence[str] | None = None


def upgrade() -> None:
    with op.batch_alter_table("usage_records", schema=None) as batch_op:
        batch_op.add_column(sa.Column("external_id", sa.String(length=200), nullable=True))

    op.create_table(
        "metering_seen_events",
        sa.Column("source", sa.String(length=200), nullable=False),
        sa.Column("event_id", sa.String(length=200), nullable=False),
        sa.Column("outcome", sa.String(length=16), nullable=False),
        sa.Column("usage_record_id", sa.Integer(), nullable=True),
        sa.Column("seen_at", suanwang.db.base.UTCDateTime(timezone=True), nullable=False),
        sa.Column("id", sa.Integer(), nullable=False),
        sa.ForeignKeyConstraint(
            ["usage_record_id"],
            ["usage_records.id"],
            name=op.f("fk_metering_seen_events_usage_record_id_usage_records"),
        ),
        sa.PrimaryKeyConstraint("id", name=op.f("pk_metering_seen_events")),
        sa.UniqueConstraint("source", "event_id", name=op.f("uq_metering_seen_events_source_event_id")),
    )


def downgrade() -> None:
    op.drop_table("metering_seen_events")
    with op.batch_alter_table("usage_records", schema=None) as batch_op:
        batch_op.drop_column("external_id")
