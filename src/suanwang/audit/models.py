"""The audit trail's tables: the entries, and the one-row head that every sealing transaction locks."""

from __future__ import annotations

from datetime import datetime

from sqlalchemy import BigInteger, Index, Integer, String, Text
from sqlalchemy.orm import Mapped, mapped_column

from suanwang.db.base import Base

ACTOR_CHARS = 200
KEY_CHARS = 200


class AuditEntry(Base):
    """One change to one row. Append-only: the database refuses UPDATE and DELETE (triggers)."""

    __tablename__ = "audit_log"
    __table_args__ = (
        Index("ix_audit_log_table_name_row_key", "table_name", "row_key"),
        Index("ix_audit_log_actor_seq", "actor", "seq"),
    )

    seq: Mapped[int] = mapped_column(BigInteger, primary_key=True, autoincrement=False)
    at: Mapped[datetime] = mapped_column()
    actor: Mapped[str] = mapped_column(String(ACTOR_CHARS))
    action: Mapped[str] = mapped_column(String(16))  # insert | update | delete
    table_name: Mapped[str] = mapped_column(String(64))
    row_key: Mapped[str] = mapped_column(String(KEY_CHARS))
    before: Mapped[str | None] = mapped_column(Text)  # JSON text, kept byte for byte as hashed
    after: Mapped[str | None] = mapped_column(Text)
    prev_hash: Mapped[str] = mapped_column(String(64))
    hash: Mapped[str] = mapped_column(String(64))


class AuditHead(Base):
    """The chain's last sequence number and hash (one row, id 1): locked while a transaction seals its
    entries, so entries are numbered in commit order with no gaps."""

    __tablename__ = "audit_head"

    id: Mapped[int] = mapped_column(Integer, primary_key=True, autoincrement=False)
    seq: Mapped[int] = mapped_column(BigInteger)
    hash: Mapped[str] = mapped_column(String(64))
