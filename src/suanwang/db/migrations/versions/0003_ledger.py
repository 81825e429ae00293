"""ledger: accounts with balances, append-only transfers, open pendings with a timeout

Revision ID: 0003
Revises: 0002
Create Date: 2026-11-26 23:18:12.891480
"""

from collections.abc import Sequence

import sqlalchemy as sa
from alembic import op

import suanwang.db.base

# Transfers are append-only: the database refuses any UPDATE of them (the code never issues one).
# On SQLite a later batch_alter_table("ledger_transfers") re-creates the table without this trigger:
# such a migration must create it again.
APPEND_ONLY = "ledger_transfers is append-only"

revision: str = "0003"
down_revision: str | None = "0002"
branch_labels: str | Sequence[str] | None = None
depends_on: str | Sequence[str] | None = None


def upgrade() -> None:
    op.create_table(
        "ledger_accounts",
        sa.Column("key", sa.String(length=100), nullable=False),
        sa.Column("ledger", sa.String(length=16), nullable=False),
        sa.Column("code", sa.String(length=32), nullable=False),
        sa.Column("owner_kind", sa.String(length=32), nullable=True),
        sa.Column("owner_id", sa.Integer(), nullable=True),
        sa.Column("debits_must_not_exceed_credits", sa.Boolean(), nullable=False),
        sa.Column("credits_must_not_exceed_debits", sa.Boolean(), nullable=False),
        sa.Column("credit_limit_fen", sa.BigInteger(), nullable=False),
        sa.Column("debits_pending", sa.BigInteger(), nullable=False),
        sa.Column("debits_posted", sa.BigInteger(), nullable=False),
        sa.Column("credits_pending", sa.BigInteger(), nullable=False),
        sa.Column("credits_posted", sa.BigInteger(), nullable=False),
        sa.Column("closed_at", suanwang.db.base.UTCDateTime(timezone=True), nullable=True),
        sa.Column("created_at", suanwang.db.base.UTCDateTime(timezone=True), nullable=False),
        sa.Column("id", sa.Integer(), nullable=False),
        sa.CheckConstraint(
            "NOT (debits_must_not_exceed_credits AND credits_must_not_exceed_debits)",
            name=op.f("ck_ledger_accounts_flags_exclusive"),
        ),
        sa.CheckConstraint(
            "credit_limit_fen >= 0", name=op.f("ck_ledger_accounts_credit_limit_not_negative")
        ),
        sa.CheckConstraint(
            "debits_pending >= 0 AND debits_posted >= 0 AND credits_pending >= 0 AND credits_posted >= 0",
            name=op.f("ck_ledger_accounts_balances_not_negative"),
        ),
        sa.PrimaryKeyConstraint("id", name=op.f("pk_ledger_accounts")),
        sa.UniqueConstraint("key", name=op.f("uq_ledger_accounts_key")),
    )
    with op.batch_alter_table("ledger_accounts", schema=None) as batch_op:
        batch_op.create_index("ix_ledger_accounts_owner", ["owner_kind", "owner_id"], unique=False)

    op.create_table(
        "ledger_transfers",
        sa.Column("id", sa.String(length=128), nullable=False),
        sa.Column("seq", sa.BigInteger(), sa.Identity(always=False), nullable=False),
        sa.Column("debit_account_id", sa.Integer(), nullable=False),
        sa.Column("credit_account_id", sa.Integer(), nullable=False),
        sa.Column("amount", sa.BigInteger(), nullable=False),
        sa.Column("ledger", sa.String(length=16), nullable=False),
        sa.Column("code", sa.String(length=32), nullable=False),
        sa.Column("reference", sa.String(length=100), nullable=True),
        sa.Column("linked", sa.Boolean(), nullable=False),
        sa.Column("pending", sa.Boolean(), nullable=False),
        sa.Column("post_pending", sa.Boolean(), nullable=False),
        sa.Column("void_pending", sa.Boolean(), nullable=False),
        sa.Column("pending_id", sa.String(length=128), nullable=True),
        sa.Column("timeout_s", sa.Integer(), nullable=True),
        sa.Column("reason", sa.String(length=500), nullable=True),
        sa.Column("user_id", sa.Integer(), nullable=True),
        sa.Column("expired", sa.Boolean(), nullable=False),
        sa.Column("expires_at", suanwang.db.base.UTCDateTime(timezone=True), nullable=True),
        sa.Column("created_at", suanwang.db.base.UTCDateTime(timezone=True), nullable=False),
        sa.CheckConstraint("amount > 0", name=op.f("ck_ledger_transfers_amount_positive")),
        sa.CheckConstraint(
            "debit_account_id <> credit_account_id", name=op.f("ck_ledger_transfers_accounts_different")
        ),
        sa.ForeignKeyConstraint(
            ["credit_account_id"],
            ["ledger_accounts.id"],
            name=op.f("fk_ledger_transfers_credit_account_id_ledger_accounts"),
        ),
        sa.ForeignKeyConstraint(
            ["debit_account_id"],
            ["ledger_accounts.id"],
            name=op.f("fk_ledger_transfers_debit_account_id_ledger_accounts"),
        ),
        sa.ForeignKeyConstraint(
            ["pending_id"],
            ["ledger_transfers.id"],
            name=op.f("fk_ledger_transfers_pending_id_ledger_transfers"),
        ),
        sa.PrimaryKeyConstraint("id", name=op.f("pk_ledger_transfers")),
        sa.UniqueConstraint("pending_id", name=op.f("uq_ledger_transfers_pending_id")),
        sa.UniqueConstraint("seq", name=op.f("uq_ledger_transfers_seq")),
    )
    with op.batch_alter_table("ledger_transfers", schema=None) as batch_op:
        batch_op.create_index(
            "ix_ledger_transfers_credit_account_id_seq", ["credit_account_id", "seq"], unique=False
        )
        batch_op.create_index(
            "ix_ledger_transfers_debit_account_id_seq", ["debit_account_id", "seq"], unique=False
        )

    op.create_table(
        "ledger_pending_expiries",
        sa.Column("transfer_id", sa.String(length=128), nullable=False),
        sa.Column("debit_account_id", sa.Integer(), nullable=False),
        sa.Column("credit_account_id", sa.Integer(), nullable=False),
        sa.Column("expires_at", suanwang.db.base.UTCDateTime(timezone=True), nullable=False),
        sa.ForeignKeyConstraint(
            ["transfer_id"],
            ["ledger_transfers.id"],
            name=op.f("fk_ledger_pending_expiries_transfer_id_ledger_transfers"),
        ),
        sa.PrimaryKeyConstraint("transfer_id", name=op.f("pk_ledger_pending_expiries")),
    )
    with op.batch_alter_table("ledger_pending_expiries", schema=None) as batch_op:
        batch_op.create_index(
            batch_op.f("ix_ledger_pending_expiries_expires_at"), ["expires_at"], unique=False
        )
    if op.get_bind().dialect.name == "postgresql":
        op.execute(
            "CREATE FUNCTION ledger_transfers_append_only() RETURNS trigger LANGUAGE plpgsql AS "
            f"$$ BEGIN RAISE EXCEPTION '{APPEND_ONLY}'; END $$"
        )
        op.execute(
            "CREATE TRIGGER ledger_transfers_no_update BEFORE UPDATE ON ledger_transfers "
            "FOR EACH STATEMENT EXECUTE FUNCTION ledger_transfers_append_only()"
        )
    else:
        op.execute(
            "CREATE TRIGGER ledger_transfers_no_update BEFORE UPDATE ON ledger_transfers "
            f"BEGIN SELECT RAISE(ABORT, '{APPEND_ONLY}'); END"
        )


def downgrade() -> None:
    op.execute(
        "DROP TRIGGER IF EXISTS ledger_transfers_no_update"
        + (" ON ledger_transfers" if op.get_bind().dialect.name == "postgresql" else "")
    )
    if op.get_bind().dialect.name == "postgresql":
        op.execute("DROP FUNCTION IF EXISTS ledger_transfers_append_only()")
    with op.batch_alter_table("ledger_pending_expiries", schema=None) as batch_op:
        batch_op.drop_index(batch_op.f("ix_ledger_pending_expiries_expires_at"))

    op.drop_table("ledger_pending_expiries")
    with op.batch_alter_table("ledger_transfers", schema=None) as batch_op:
        batch_op.drop_index("ix_ledger_transfers_debit_account_id_seq")
        batch_op.drop_index("ix_ledger_transfers_credit_account_id_seq")

    op.drop_table("ledger_transfers")
    with op.batch_alter_table("ledger_accounts", schema=None) as batch_op:
        batch_op.drop_index("ix_ledger_accounts_owner")

    op.drop_table("ledger_accounts")
