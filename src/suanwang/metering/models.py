"""Metered usage: what really ran, as the backend reported it — the input of rating and settlement."""

from __future__ import annotations

from datetime import datetime

from sqlalchemy import BigInteger, ForeignKey, String, UniqueConstraint
from sqlalchemy.orm import Mapped, mapped_column

from suanwang.db.base import Base, IdMixin


class UsageRecord(IdMixin, Base):
    """One ended launch: who used which pool's cards, from when to when. One per launch, never edited."""

    __tablename__ = "usage_records"
    __table_args__ = (UniqueConstraint("launch_id"),)

    launch_id: Mapped[int] = mapped_column(ForeignKey("launches.id"))
    job_id: Mapped[int] = mapped_column(ForeignKey("jobs.id"), index=True)
    org_id: Mapped[int] = mapped_column(ForeignKey("organisations.id"), index=True)
    pool_id: Mapped[int] = mapped_column(ForeignKey("pools.id"), index=True)
    cards: Mapped[int] = mapped_column()
    started_at: Mapped[datetime] = mapped_column()
    ended_at: Mapped[datetime] = mapped_column(index=True)
    card_seconds: Mapped[int] = mapped_column(BigInteger)
    source: Mapped[str] = mapped_column(String(16))  # the backend kind that reported it
    recorded_at: Mapped[datetime] = mapped_column()
