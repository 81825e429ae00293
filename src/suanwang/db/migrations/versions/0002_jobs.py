"""jobs, their events and launches, reservations, usage records, pool health

Revision ID: 0002
Revises: 0001
Create Date: 2026-11-26 16:17:45.131976
"""

from collections.abc import Sequence

import sqlalchemy as sa
from alembic import op

import suanwang.db.base

revision: str = "0002"
down_revision: str | None = "0001"
branch_labels: str | Sequence[str] | None = None
depends_on: str | Sequence[str] | None = None


def upgrade() -> None:
    op.create_table(
        "platform_meta",
        sa.Column("key", sa.String(length=64), nullable=False),
        sa.Column("value", sa.String(length=500), nullable=False),
        sa.PrimaryKeyConstraint("key", name=op.f("pk_platform_meta")),
    )
    op.create_table(
        "jobs",
        sa.Column("org_id", sa.Integer(), nullable=False),
        sa.Column("submitted_by", sa.Integer(), nullable=False),
        sa.Column("name", sa.String(length=200), nullable=True),
        sa.Column("command", sa.JSON(), nullable=False),
        sa.Column("env", sa.JSON(), nullable=False),
        sa.Column("workdir", sa.String(length=1000), nullable=True),
        sa.Column("cards", sa.Integer(), nullable=False),
        sa.Column("cards_per_node", sa.Integer(), nullable=True),
        sa.Column("accelerators", sa.JSON(), nullable=False),
        sa.Column("min_memory_gib", sa.Integer(), nullable=False),
        sa.Column("duration_estimate_s", sa.Integer(), nullable=False),
        sa.Column("deadline", suanwang.db.base.UTCDateTime(timezone=True), nullable=True),
        sa.Column("max_price_fen_per_card_hour", sa.BigInteger(), nullable=True),
        sa.Column(
            "classification",
            sa.Enum("public", "internal", "government", name="classification", native_enum=False, length=32),
            nullable=False,
        ),
        sa.Column("regions", sa.JSON(), nullable=False),
        sa.Column("priority", sa.Integer(), nullable=False),
        sa.Column("preemptible", sa.Boolean(), nullable=False),
        sa.Column("job_type", sa.String(length=100), nullable=True),
        sa.Column(
            "state",
            sa.Enum(
                "submitted",
                "queued",
                "placed",
                "running",
                "succeeded",
                "failed",
                "cancelled",
                "preempted",
                "lost",
                "rejected",
                name="job_state",
                native_enum=False,
                length=32,
            ),
            nullable=False,
        ),
        sa.Column("attempt", sa.Integer(), nullable=False),
        sa.Column("not_before", suanwang.db.base.UTCDateTime(timezone=True), nullable=True),
        sa.Column("pool_id", sa.Integer(), nullable=True),
        sa.Column("reason_code", sa.String(length=64), nullable=True),
        sa.Column("reason_params", sa.JSON(), nullable=False),
        sa.Column("cancel_requested_at", suanwang.db.base.UTCDateTime(timezone=True), nullable=True),
        sa.Column("submitted_at", suanwang.db.base.UTCDateTime(timezone=True), nullable=False),
        sa.Column("started_at", suanwang.db.base.UTCDateTime(timezone=True), nullable=True),
        sa.Column("ended_at", suanwang.db.base.UTCDateTime(timezone=True), nullable=True),
        sa.Column("exit_code", sa.Integer(), nullable=True),
        sa.Column("card_seconds", sa.BigInteger(), nullable=False),
        sa.Column("est_cost_fen", sa.BigInteger(), nullable=True),
        sa.Column("id", sa.Integer(), nullable=False),
        sa.Column("created_at", suanwang.db.base.UTCDateTime(timezone=True), nullable=False),
        sa.Column("updated_at", suanwang.db.base.UTCDateTime(timezone=True), nullable=False),
        sa.CheckConstraint("cards >= 0", name=op.f("ck_jobs_cards_not_negative")),
        sa.CheckConstraint("duration_estimate_s > 0", name=op.f("ck_jobs_duration_positive")),
        sa.ForeignKeyConstraint(["org_id"], ["organisations.id"], name=op.f("fk_jobs_org_id_organisations")),
        sa.ForeignKeyConstraint(["pool_id"], ["pools.id"], name=op.f("fk_jobs_pool_id_pools")),
        sa.ForeignKeyConstraint(["submitted_by"], ["users.id"], name=op.f("fk_jobs_submitted_by_users")),
        sa.PrimaryKeyConstraint("id", name=op.f("pk_jobs")),
    )
    with op.batch_alter_table("jobs", schema=None) as batch_op:
        batch_op.create_index(batch_op.f("ix_jobs_org_id"), ["org_id"], unique=False)
        batch_op.create_index(batch_op.f("ix_jobs_pool_id"), ["pool_id"], unique=False)
        batch_op.create_index(batch_op.f("ix_jobs_state"), ["state"], unique=False)
        batch_op.create_index("ix_jobs_state_priority", ["state", "priority"], unique=False)

    op.create_table(
        "reservations",
        sa.Column("org_id", sa.Integer(), nullable=False),
        sa.Column("pool_id", sa.Integer(), nullable=False),
        sa.Column("cards", sa.Integer(), nullable=False),
        sa.Column("starts_at", suanwang.db.base.UTCDateTime(timezone=True), nullable=False),
        sa.Column("ends_at", suanwang.db.base.UTCDateTime(timezone=True), nullable=False),
        sa.Column("created_by", sa.Integer(), nullable=False),
        sa.Column("cancelled_at", suanwang.db.base.UTCDateTime(timezone=True), nullable=True),
        sa.Column("id", sa.Integer(), nullable=False),
        sa.Column("created_at", suanwang.db.base.UTCDateTime(timezone=True), nullable=False),
        sa.Column("updated_at", suanwang.db.base.UTCDateTime(timezone=True), nullable=False),
        sa.CheckConstraint("cards > 0", name=op.f("ck_reservations_cards_positive")),
        sa.ForeignKeyConstraint(["created_by"], ["users.id"], name=op.f("fk_reservations_created_by_users")),
        sa.ForeignKeyConstraint(
            ["org_id"], ["organisations.id"], name=op.f("fk_reservations_org_id_organisations")
        ),
        sa.ForeignKeyConstraint(["pool_id"], ["pools.id"], name=op.f("fk_reservations_pool_id_pools")),
        sa.PrimaryKeyConstraint("id", name=op.f("pk_reservations")),
    )
    with op.batch_alter_table("reservations", schema=None) as batch_op:
        batch_op.create_index(batch_op.f("ix_reservations_org_id"), ["org_id"], unique=False)
        batch_op.create_index(batch_op.f("ix_reservations_pool_id"), ["pool_id"], unique=False)

    op.create_table(
        "job_events",
        sa.Column("job_id", sa.Integer(), nullable=False),
        sa.Column("at", suanwang.db.base.UTCDateTime(timezone=True), nullable=False),
        sa.Column(
            "from_state",
            sa.Enum(
                "submitted",
                "queued",
                "placed",
                "running",
                "succeeded",
                "failed",
                "cancelled",
                "preempted",
                "lost",
                "rejected",
                name="job_state",
                native_enum=False,
                length=32,
            ),
            nullable=True,
        ),
        sa.Column(
            "to_state",
            sa.Enum(
                "submitted",
                "queued",
                "placed",
                "running",
                "succeeded",
                "failed",
                "cancelled",
                "preempted",
                "lost",
                "rejected",
                name="job_state",
                native_enum=False,
                length=32,
            ),
            nullable=False,
        ),
        sa.Column("attempt", sa.Integer(), nullable=False),
        sa.Column("cause", sa.String(length=64), nullable=False),
        sa.Column("detail", sa.JSON(), nullable=False),
        sa.Column("id", sa.Integer(), nullable=False),
        sa.ForeignKeyConstraint(["job_id"], ["jobs.id"], name=op.f("fk_job_events_job_id_jobs")),
        sa.PrimaryKeyConstraint("id", name=op.f("pk_job_events")),
    )
    with op.batch_alter_table("job_events", schema=None) as batch_op:
        batch_op.create_index(batch_op.f("ix_job_events_job_id"), ["job_id"], unique=False)

    op.create_table(
        "launches",
        sa.Column("job_id", sa.Integer(), nullable=False),
        sa.Column("attempt", sa.Integer(), nullable=False),
        sa.Column("pool_id", sa.Integer(), nullable=False),
        sa.Column("name", sa.String(length=64), nullable=False),
        sa.Column("handle", sa.String(length=200), nullable=True),
        sa.Column("remote_state", sa.String(length=16), nullable=False),
        sa.Column("est_end_at", suanwang.db.base.UTCDateTime(timezone=True), nullable=True),
        sa.Column("borrowing", sa.Boolean(), nullable=False),
        sa.Column("recorded_at", suanwang.db.base.UTCDateTime(timezone=True), nullable=False),
        sa.Column("sent_at", suanwang.db.base.UTCDateTime(timezone=True), nullable=True),
        sa.Column("started_at", suanwang.db.base.UTCDateTime(timezone=True), nullable=True),
        sa.Column("ended_at", suanwang.db.base.UTCDateTime(timezone=True), nullable=True),
        sa.Column("exit_code", sa.Integer(), nullable=True),
        sa.Column("card_seconds", sa.BigInteger(), nullable=True),
        sa.Column("message", sa.Text(), nullable=True),
        sa.Column("closed", sa.Boolean(), nullable=False),
        sa.Column("id", sa.Integer(), nullable=False),
        sa.ForeignKeyConstraint(["job_id"], ["jobs.id"], name=op.f("fk_launches_job_id_jobs")),
        sa.ForeignKeyConstraint(["pool_id"], ["pools.id"], name=op.f("fk_launches_pool_id_pools")),
        sa.PrimaryKeyConstraint("id", name=op.f("pk_launches")),
        sa.UniqueConstraint("job_id", "attempt", name=op.f("uq_launches_job_id_attempt")),
        sa.UniqueConstraint("name", name=op.f("uq_launches_name")),
    )
    with op.batch_alter_table("launches", schema=None) as batch_op:
        batch_op.create_index(batch_op.f("ix_launches_closed"), ["closed"], unique=False)
        batch_op.create_index(batch_op.f("ix_launches_job_id"), ["job_id"], unique=False)
        batch_op.create_index(batch_op.f("ix_launches_pool_id"), ["pool_id"], unique=False)

    op.create_table(
        "usage_records",
        sa.Column("launch_id", sa.Integer(), nullable=False),
        sa.Column("job_id", sa.Integer(), nullable=False),
        sa.Column("org_id", sa.Integer(), nullable=False),
        sa.Column("pool_id", sa.Integer(), nullable=False),
        sa.Column("cards", sa.Integer(), nullable=False),
        sa.Column("started_at", suanwang.db.base.UTCDateTime(timezone=True), nullable=False),
        sa.Column("ended_at", suanwang.db.base.UTCDateTime(timezone=True), nullable=False),
        sa.Column("card_seconds", sa.BigInteger(), nullable=False),
        sa.Column("source", sa.String(length=16), nullable=False),
        sa.Column("recorded_at", suanwang.db.base.UTCDateTime(timezone=True), nullable=False),
        sa.Column("id", sa.Integer(), nullable=False),
        sa.ForeignKeyConstraint(["job_id"], ["jobs.id"], name=op.f("fk_usage_records_job_id_jobs")),
        sa.ForeignKeyConstraint(
            ["launch_id"], ["launches.id"], name=op.f("fk_usage_records_launch_id_launches")
        ),
        sa.ForeignKeyConstraint(
            ["org_id"], ["organisations.id"], name=op.f("fk_usage_records_org_id_organisations")
        ),
        sa.ForeignKeyConstraint(["pool_id"], ["pools.id"], name=op.f("fk_usage_records_pool_id_pools")),
        sa.PrimaryKeyConstraint("id", name=op.f("pk_usage_records")),
        sa.UniqueConstraint("launch_id", name=op.f("uq_usage_records_launch_id")),
    )
    with op.batch_alter_table("usage_records", schema=None) as batch_op:
        batch_op.create_index(batch_op.f("ix_usage_records_ended_at"), ["ended_at"], unique=False)
        batch_op.create_index(batch_op.f("ix_usage_records_job_id"), ["job_id"], unique=False)
        batch_op.create_index(batch_op.f("ix_usage_records_org_id"), ["org_id"], unique=False)
        batch_op.create_index(batch_op.f("ix_usage_records_pool_id"), ["pool_id"], unique=False)

    with op.batch_alter_table("pools", schema=None) as batch_op:
        batch_op.add_column(sa.Column("healthy", sa.Boolean(), nullable=False, server_default=sa.true()))
        batch_op.add_column(
            sa.Column("unhealthy_since", suanwang.db.base.UTCDateTime(timezone=True), nullable=True)
        )
        batch_op.add_column(sa.Column("health_message", sa.String(length=500), nullable=True))


def downgrade() -> None:
    op.drop_table("platform_meta")
    with op.batch_alter_table("pools", schema=None) as batch_op:
        batch_op.drop_column("health_message")
        batch_op.drop_column("unhealthy_since")
        batch_op.drop_column("healthy")

    with op.batch_alter_table("usage_records", schema=None) as batch_op:
        batch_op.drop_index(batch_op.f("ix_usage_records_pool_id"))
        batch_op.drop_index(batch_op.f("ix_usage_records_org_id"))
        batch_op.drop_index(batch_op.f("ix_usage_records_job_id"))
        batch_op.drop_index(batch_op.f("ix_usage_records_ended_at"))

    op.drop_table("usage_records")
    with op.batch_alter_table("launches", schema=None) as batch_op:
        batch_op.drop_index(batch_op.f("ix_launches_pool_id"))
        batch_op.drop_index(batch_op.f("ix_launches_job_id"))
        batch_op.drop_index(batch_op.f("ix_launches_closed"))

    op.drop_table("launches")
    with op.batch_alter_table("job_events", schema=None) as batch_op:
        batch_op.drop_index(batch_op.f("ix_job_events_job_id"))

    op.drop_table("job_events")
    with op.batch_alter_table("reservations", schema=None) as batch_op:
        batch_op.drop_index(batch_op.f("ix_reservations_pool_id"))
        batch_op.drop_index(batch_op.f("ix_reservations_org_id"))

    op.drop_table("reservations")
    with op.batch_alter_table("jobs", schema=None) as batch_op:
        batch_op.drop_index("ix_jobs_state_priority")
        batch_op.drop_index(batch_op.f("ix_jobs_state"))
        batch_op.drop_index(batch_op.f("ix_jobs_pool_id"))
        batch_op.drop_index(batch_op.f("ix_jobs_org_id"))

    op.drop_table("jobs")
