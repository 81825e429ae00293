"""Tables of the ledger: accounts with their balances, and transfers (append-only, never updated)."""

from __future__ import annotations

from datetime import datetime

from sqlalchemy import BigInteger, CheckConstraint, ForeignKey, Identity, Index, String
from sqlalchemy.orm import Mapped, mapped_column

from suanwang.db.base import Base, IdMixin
from suanwang.ledger.rules import (
    CODE_CHARS_MAX,
    KEY_CHARS_MAX,
    LEDGER_CHARS_MAX,
    OWNER_KIND_CHARS_MAX,
    REASON_CHARS_MAX,
    REFERENCE_CHARS_MAX,
)

# Room for a client id (≤ 100 characters) and the "/expired" suffix of the transfer that expires it.
TRANSFER_ID_CHARS = 128


class LedgerAccount(IdMixin, Base):
    """An account and its balances; the balances change only together with the transfers that move them."""

    __tablename__ = "ledger_accounts"
    __table_args__ = (
        CheckConstraint(
            "NOT (debits_must_not_exceed_credits AND credits_must_not_exceed_debits)", name="flags_exclusive"
        ),
        CheckConstraint("credit_limit_fen >= 0", name="credit_limit_not_negative"),
        CheckConstraint(
            "debits_pending >= 0 AND debits_posted >= 0 AND credits_pending >= 0 AND credits_posted >= 0",
            name="balances_not_negative",
        ),
        Index("ix_ledger_accounts_owner", "owner_kind", "owner_id"),
    )

    key: Mapped[str] = mapped_column(String(KEY_CHARS_MAX), unique=True)
    ledger: Mapped[str] = mapped_column(String(LEDGER_CHARS_MAX))  # currency, e.g. "CNY"
    code: Mapped[str] = mapped_column(String(CODE_CHARS_MAX))  # kind of account: wallet, revenue, ...
    owner_kind: Mapped[str | None] = mapped_column(String(OWNER_KIND_CHARS_MAX))
    owner_id: Mapped[int | None] = mapped_column()
    debits_must_not_exceed_credits: Mapped[bool] = mapped_column(default=False)
    credits_must_not_exceed_debits: Mapped[bool] = mapped_column(default=False)
    credit_limit_fen: Mapped[int] = mapped_column(BigInteger, default=0)
    debits_pending: Mapped[int] = mapped_column(BigInteger, default=0)
    debits_posted: Mapped[int] = mapped_column(BigInteger, default=0)
    credits_pending: Mapped[int] = mapped_column(BigInteger, default=0)
    credits_posted: Mapped[int] = mapped_column(BigInteger, default=0)
    closed_at: Mapped[datetime | None] = mapped_column()
    created_at: Mapped[datetime] = mapped_column()


class LedgerTransfer(Base):
    """One transfer, as `suanwang.ledger.rules.Transfer` describes it; inserted once, never updated."""

    __tablename__ = "ledger_transfers"
    __table_args__ = (
        CheckConstraint("amount > 0", name="amount_positive"),
        CheckConstraint("debit_account_id <> credit_account_id", name="accounts_different"),
        Index("ix_ledger_transfers_debit_account_id_seq", "debit_account_id", "seq"),
        Index("ix_ledger_transfers_credit_account_id_seq", "credit_account_id", "seq"),
    )

    id: Mapped[str] = mapped_column(String(TRANSFER_ID_CHARS), primary_key=True)  # chosen by the client
    # Order of writing, for history. PostgreSQL numbers rows itself (so COPY can leave it out); on
    # SQLite, the single writer, the store numbers them.
    seq: Mapped[int] = mapped_column(BigInteger, Identity(), unique=True)
    debit_account_id: Mapped[int] = mapped_column(ForeignKey("ledger_accounts.id"))
    credit_account_id: Mapped[int] = mapped_column(ForeignKey("ledger_accounts.id"))
    amount: Mapped[int] = mapped_column(BigInteger)
    ledger: Mapped[str] = mapped_column(String(LEDGER_CHARS_MAX))
    code: Mapped[str] = mapped_column(String(CODE_CHARS_MAX))
    reference: Mapped[str | None] = mapped_column(String(REFERENCE_CHARS_MAX))
    linked: Mapped[bool] = mapped_column()
    pending: Mapped[bool] = mapped_column()
    post_pending: Mapped[bool] = mapped_column()
    void_pending: Mapped[bool] = mapped_column()
    # Unique: a pending transfer is resolved (posted, voided or expired) at most once, whatever the code.
    pending_id: Mapped[str | None] = mapped_column(
        String(TRANSFER_ID_CHARS), ForeignKey("ledger_transfers.id"), unique=True
    )
    timeout_s: Mapped[int | None] = mapped_column()
    reason: Mapped[str | None] = mapped_column(String(REASON_CHARS_MAX))
    user_id: Mapped[int | None] = mapped_column()  # the acting user, if a person acted
    expired: Mapped[bool] = mapped_column()
    expires_at: Mapped[datetime | None] = mapped_column()
    created_at: Mapped[datetime] = mapped_column()


class LedgerPendingExpiry(Base):
    """Open pending transfers that have a timeout: the due ones are found without scanning history.

    A row is added with its pending and deleted when the pending is resolved; it is only an index of
    candidates (the resolving transfer's unique pending_id is what makes resolution exactly-once).
    """

    __tablename__ = "ledger_pending_expiries"

    transfer_id: Mapped[str] = mapped_column(
        String(TRANSFER_ID_CHARS), ForeignKey("ledger_transfers.id"), primary_key=True
    )
    debit_account_id: Mapped[int] = mapped_column()
    credit_account_id: Mapped[int] = mapped_column()
    expires_at: Mapped[datetime] = mapped_column(index=True)
