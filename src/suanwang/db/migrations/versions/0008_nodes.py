"""node agents: nodes, their launches and output; what an agent measured on a usage record

Revision ID: 0008
Revises: 0007
Create Date: 2026-11-27 11:12:04.651127
"""

from collections.abc import Sequence

import sqlalchemy as sa
from alembic import op

import suanwang.db.base

revision: str = "0008"
down_revision: str | None = "0007"
branch_labels: str | Sequence[str] | None = None
depends_on: str | Sequence[str] | None = None


def upgrade() -> None:
    op.create_table(
        "node_log_chunks",
        sa.Column("launch_name", sa.String(length=64), nullable=False),
        sa.Column("offset", sa.Integer(), nullable=False),
        sa.Column("data", sa.LargeBinary(), nullable=False),
        sa.Column("id", sa.Integer(), nullable=False),
        sa.PrimaryKeyConstraint("id", name=op.f("pk_node_log_chunks")),
        sa.UniqueConstraint("launch_name", "offset", name=op.f("uq_node_log_chunks_launch_name_offset")),
    )
    with op.batch_alter_table("node_log_chunks", schema=None) as batch_op:
        batch_op.create_index(batch_op.f("ix_node_log_chunks_launch_name"), ["launch_name"], unique=False)

    op.create_table(
        "nodes",
        sa.Column("pool_id", sa.Integer(), nullable=False),
        sa.Column("hostname", sa.String(length=200), nullable=False),
        sa.Column("cards", sa.JSON(), nullable=False),
        sa.Column("card_count", sa.Integer(), nullable=False),
        sa.Column("cpu_count", sa.Integer(), nullable=False),
        sa.Column("driver_version", sa.String(length=64), nullable=True),
        sa.Column("agent_version", sa.String(length=64), nullable=True),
        sa.Column("registered_at", suanwang.db.base.UTCDateTime(timezone=True), nullable=False),
        sa.Column("last_heartbeat_at", suanwang.db.base.UTCDateTime(timezone=True), nullable=False),
        sa.Column("calibration", sa.JSON(), nullable=True),
        sa.Column("calibrated_at", suanwang.db.base.UTCDateTime(timezone=True), nullable=True),
        sa.Column("id", sa.Integer(), nullable=False),
        sa.ForeignKeyConstraint(["pool_id"], ["pools.id"], name=op.f("fk_nodes_pool_id_pools")),
        sa.PrimaryKeyConstraint("id", name=op.f("pk_nodes")),
        sa.UniqueConstraint("pool_id", "hostname", name=op.f("uq_nodes_pool_id_hostname")),
    )
    with op.batch_alter_table("nodes", schema=None) as batch_op:
        batch_op.create_index(batch_op.f("ix_nodes_pool_id"), ["pool_id"], unique=False)

    op.create_table(
        "node_launches",
        sa.Column("name", sa.String(length=64), nullable=False),
        sa.Column("node_id", sa.Integer(), nullable=False),
        sa.Column("command", sa.JSON(), nullable=False),
        sa.Column("env", sa.JSON(), nullable=False),
        sa.Column("workdir", sa.String(length=1000), nullable=True),
        sa.Column("cards", sa.Integer(), nullable=False),
        sa.Column("card_indices", sa.JSON(), nullable=False),
        sa.Column("time_limit_s", sa.Integer(), nullable=True),
        sa.Column("state", sa.String(length=16), nullable=False),
        sa.Column("cancel_requested", sa.Boolean(), nullable=False),
        sa.Column("assigned_at", suanwang.db.base.UTCDateTime(timezone=True), nullable=False),
        sa.Column("started_at", suanwang.db.base.UTCDateTime(timezone=True), nullable=True),
        sa.Column("ended_at", suanwang.db.base.UTCDateTime(timezone=True), nullable=True),
        sa.Column("exit_code", sa.Integer(), nullable=True),
        sa.Column("message", sa.Text(), nullable=True),
        sa.Column("log_bytes", sa.Integer(), nullable=False),
        sa.Column("id", sa.Integer(), nullable=False),
        sa.ForeignKeyConstraint(["node_id"], ["nodes.id"], name=op.f("fk_node_launches_node_id_nodes")),
        sa.PrimaryKeyConstraint("id", name=op.f("pk_node_launches")),
        sa.UniqueConstraint("name", name=op.f("uq_node_launches_name")),
    )
    with op.batch_alter_table("node_launches", schema=None) as batch_op:
        batch_op.create_index(batch_op.f("ix_node_launches_node_id"), ["node_id"], unique=False)
        batch_op.create_index(batch_op.f("ix_node_launches_state"), ["state"], unique=False)

    with op.batch_alter_table("usage_records", schema=None) as batch_op:
        batch_op.add_column(sa.Column("measured", sa.JSON(), nullable=True))


def downgrade() -> None:
    with op.batch_alter_table("usage_records", schema=None) as batch_op:
        batch_op.drop_column("measured")

    with op.batch_alter_table("node_launches", schema=None) as batch_op:
        batch_op.drop_index(batch_op.f("ix_node_launches_state"))
        batch_op.drop_index(batch_op.f("ix_node_launches_node_id"))

    op.drop_table("node_launches")
    with op.batch_alter_table("nodes", schema=None) as batch_op:
        batch_op.drop_index(batch_op.f("ix_nodes_pool_id"))

    op.drop_table("nodes")
    with op.batch_alter_table("node_log_chunks", schema=None) as batch_op:
        batch_op.drop_index(batch_op.f("ix_node_log_chunks_launch_name"))

    op.drop_table("node_log_chunks")
