"""settlement: a job's hold and charge

Revision ID: 0005
Revises: 0004
Create Date: 2026-11-27 00:40:00
"""

from collections.abc import Sequence

import sqlalchemy as sa
from alembic import op

revision: str = "0005"
down_revision: str | None = "0004"
branch_labels: str | Sequence[str] | None = None
depends_on: str | Sequence[str] | None = None


def upgrade() -> None:
    with op.batch_alter_table("jobs") as batch:
        batch.add_column(sa.Column("hold_fen", sa.BigInteger(), nullable=True))
        batch.add_column(sa.Column("charged_fen", sa.BigInteger(), nullable=True))
    # Jobs from before settlement hold nothing and are not waiting for funds.
    op.execute("UPDATE jobs SET hold_fen = 0")


def downgrade() -> None:
    with op.batch_alter_table("jobs") as batch:
        batch.drop_column("charged_fen")
        batch.drop_column("hold_fen")
