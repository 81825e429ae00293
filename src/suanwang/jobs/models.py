"""Tables of the jobs slice: jobs, their history, their launches on backends, and reservations."""

from __future__ import annotations

from datetime import datetime
from typing import Any

from sqlalchemy import JSON, BigInteger, CheckConstraint, ForeignKey, Index, String, Text, UniqueConstraint
from sqlalchemy.orm import Mapped, mapped_column, relationship

from suanwang.db.base import Base, IdMixin, TimestampsMixin, enum_column
from suanwang.jobs.lifecycle import JobState
from suanwang.scheduler.types import Classification


class Job(IdMixin, TimestampsMixin, Base):
    __tablename__ = "jobs"
    __table_args__ = (
        CheckConstraint("cards >= 0", name="cards_not_negative"),
        CheckConstraint("duration_estimate_s > 0", name="duration_positive"),
        Index("ix_jobs_state_priority", "state", "priority"),
    )

    org_id: Mapped[int] = mapped_column(ForeignKey("organisations.id"), index=True)
    submitted_by: Mapped[int] = mapped_column(ForeignKey("users.id"))
    name: Mapped[str | None] = mapped_column(String(200))
    # What to run: argv, environment and working directory, handed to the backend as given.
    command: Mapped[list[str]] = mapped_column(JSON)
    env: Mapped[dict[str, str]] = mapped_column(JSON, default=dict)
    workdir: Mapped[str | None] = mapped_column(String(1000))
    # What it needs (the scheduler's hard constraints).
    cards: Mapped[int] = mapped_column()
    cards_per_node: Mapped[int | None] = mapped_column()
    accelerators: Mapped[list[str]] = mapped_column(JSON, default=list)
    min_memory_gib: Mapped[int] = mapped_column(default=0)
    # Estimated runtime on the reference accelerator; the scheduler scales it per pool.
    duration_estimate_s: Mapped[int] = mapped_column()
    deadline: Mapped[datetime | None] = mapped_column()
    max_price_fen_per_card_hour: Mapped[int | None] = mapped_column(BigInteger)
    classification: Mapped[Classification] = mapped_column(enum_column(Classification, "classification"))
    regions: Mapped[list[str]] = mapped_column(JSON, default=list)
    priority: Mapped[int] = mapped_column(default=0)
    preemptible: Mapped[bool] = mapped_column(default=False)
    job_type: Mapped[str | None] = mapped_column(String(100))

    # Where it is in its life.
    state: Mapped[JobState] = mapped_column(enum_column(JobState, "job_state"), index=True)
    attempt: Mapped[int] = mapped_column(default=0)  # launches so far; the current one when active
    not_before: Mapped[datetime | None] = mapped_column()  # backoff after a lost launch
    pool_id: Mapped[int | None] = mapped_column(ForeignKey("pools.id"), index=True)
    # Why it waits, or why it ended: a message key and its parameters (rendered in the reader's language).
    reason_code: Mapped[str | None] = mapped_column(String(64))
    reason_params: Mapped[dict[str, Any]] = mapped_column(JSON, default=dict)
    cancel_requested_at: Mapped[datetime | None] = mapped_column()
    submitted_at: Mapped[datetime] = mapped_column()
    started_at: Mapped[datetime | None] = mapped_column()
    ended_at: Mapped[datetime | None] = mapped_column()
    exit_code: Mapped[int | None] = mapped_column()
    card_seconds: Mapped[int] = mapped_column(BigInteger, default=0)  # over all attempts
    est_cost_fen: Mapped[int | None] = mapped_column(BigInteger)
    # Money: the maximum cost held on the tenant's wallet at admission (None: not funded yet) and
    # what the job was charged when it ended (settlement/service.py).
    hold_fen: Mapped[int | None] = mapped_column(BigInteger)
    charged_fen: Mapped[int | None] = mapped_column(BigInteger)

    events: Mapped[list[JobEvent]] = relationship(back_populates="job", order_by="JobEvent.id")
    launches: Mapped[list[Launch]] = relationship(back_populates="job", order_by="Launch.attempt")


class JobEvent(IdMixin, Base):
    """One transition of a job's lifecycle: when, from what, to what, and why."""

    __tablename__ = "job_events"

    job_id: Mapped[int] = mapped_column(ForeignKey("jobs.id"), index=True)
    at: Mapped[datetime] = mapped_column()
    from_state: Mapped[JobState | None] = mapped_column(enum_column(JobState, "job_state"))
    to_state: Mapped[JobState] = mapped_column(enum_column(JobState, "job_state"))
    attempt: Mapped[int] = mapped_column(default=0)
    cause: Mapped[str] = mapped_column(String(64))  # message key under "cause."
    detail: Mapped[dict[str, Any]] = mapped_column(JSON, default=dict)

    job: Mapped[Job] = relationship(back_populates="events")


class Launch(IdMixin, Base):
    """One attempt to run a job on a pool's backend, recorded before it is sent (crash-safe dispatch).

    `name` ("sw-<job>-<attempt>") travels into the backend; `handle` is the backend's own id, filled in
    once the backend has accepted the launch. A launch without a handle after a crash is looked up by
    name before anything is sent again.
    """

    __tablename__ = "launches"
    __table_args__ = (UniqueConstraint("job_id", "attempt"),)

    job_id: Mapped[int] = mapped_column(ForeignKey("jobs.id"), index=True)
    attempt: Mapped[int] = mapped_column()
    pool_id: Mapped[int] = mapped_column(ForeignKey("pools.id"), index=True)
    name: Mapped[str] = mapped_column(String(64), unique=True)
    handle: Mapped[str | None] = mapped_column(String(200))
    remote_state: Mapped[str] = mapped_column(String(16), default="recorded")
    # Scheduler's expectation at placement (for reservations, EASY backfill and the dashboard).
    est_end_at: Mapped[datetime | None] = mapped_column()
    borrowing: Mapped[bool] = mapped_column(default=False)
    recorded_at: Mapped[datetime] = mapped_column()
    sent_at: Mapped[datetime | None] = mapped_column()
    started_at: Mapped[datetime | None] = mapped_column()
    ended_at: Mapped[datetime | None] = mapped_column()
    exit_code: Mapped[int | None] = mapped_column()
    card_seconds: Mapped[int | None] = mapped_column(BigInteger)
    message: Mapped[str | None] = mapped_column(Text)
    closed: Mapped[bool] = mapped_column(default=False, index=True)  # no longer observed

    job: Mapped[Job] = relationship(back_populates="launches")


class Reservation(IdMixin, TimestampsMixin, Base):
    """N cards of a pool held for one tenant over [starts_at, ends_at)."""

    __tablename__ = "reservations"
    __table_args__ = (CheckConstraint("cards > 0", name="cards_positive"),)

    org_id: Mapped[int] = mapped_column(ForeignKey("organisations.id"), index=True)
    pool_id: Mapped[int] = mapped_column(ForeignKey("pools.id"), index=True)
    cards: Mapped[int] = mapped_column()
    starts_at: Mapped[datetime] = mapped_column()
    ends_at: Mapped[datetime] = mapped_column()
    created_by: Mapped[int] = mapped_column(ForeignKey("users.id"))
    cancelled_at: Mapped[datetime | None] = mapped_column()
