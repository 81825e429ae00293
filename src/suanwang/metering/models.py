"""Metered usage: what really ran, as the backend reported it — the input of rating and settlement."""

from __future__ import annotations

from datetime import datetime
from typing import Any

from sqlalchemy import JSON, BigInteger, ForeignKey, String, UniqueConstraint
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
    # Who reported it: the backend kind the controller observed ("slurm", "ray", …), or "event" when a
    # provider reported it through POST /metering/events (its CloudEvent is in metering_seen_events).
    source: Mapped[str] = mapped_column(String(16))
    # The backend's own id of the run (Slurm job id, Ray submission id, the agent's id), for audits.
    external_id: Mapped[str | None] = mapped_column(String(200))
    # What a node agent measured beyond card-seconds (utilization, memory, energy, CPU time), if any.
    measured: Mapped[dict[str, Any] | None] = mapped_column(JSON)
    recorded_at: Mapped[datetime] = mapped_column()


class SeenEvent(IdMixin, Base):
    """The (source, id) of every usage CloudEvent processed, so a retried event changes nothing.

    Written in the same transaction as the usage record it produced: a mark without its record (or a
    record without its mark) would lose or double an event after a crash.
    """

    __tablename__ = "metering_seen_events"
    __table_args__ = (UniqueConstraint("source", "event_id"),)

    source: Mapped[str] = mapped_column(String(200))
    event_id: Mapped[str] = mapped_column(String(200))
    # "recorded" (it made the record) or "already-metered" (the launch had one already).
    outcome: Mapped[str] = mapped_column(String(16))
    # The usage record of the event's launch: the one it made, or the one that was there before it.
    usage_record_id: Mapped[int | None] = mapped_column(ForeignKey("usage_records.id"))
    seen_at: Mapped[datetime] = mapped_column()
