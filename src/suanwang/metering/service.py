"""Metering: the controller hands every ended launch here; settlement reads it (issue: money)."""

from __future__ import annotations

import math
from datetime import datetime

from sqlalchemy import select
from sqlalchemy.orm import Session

from suanwang.metering.models import UsageRecord


def record(
    session: Session,
    *,
    launch_id: int,
    job_id: int,
    org_id: int,
    pool_id: int,
    cards: int,
    started_at: datetime,
    ended_at: datetime,
    card_seconds: int,
    source: str,
    now: datetime,
) -> UsageRecord:
    """Record one ended launch's usage once (a second call for the same launch returns the first)."""
    existing = session.scalar(select(UsageRecord).where(UsageRecord.launch_id == launch_id))
    if existing is not None:
        return existing
    usage = UsageRecord(
        launch_id=launch_id,
        job_id=job_id,
        org_id=org_id,
        pool_id=pool_id,
        cards=cards,
        started_at=started_at,
        ended_at=max(ended_at, started_at),
        card_seconds=card_seconds,
        source=source,
        recorded_at=now,
    )
    session.add(usage)
    return usage


def decayed_usage(session: Session, *, now: datetime, half_life_s: float) -> dict[int, float]:
    """Card-seconds per organisation, each record weighted by 0.5^(age / half-life) (Slurm's decay).

    Records older than ten half-lives weigh under 0.1 % and are not read.
    """
    horizon = now.timestamp() - 10 * half_life_s
    rows = session.execute(
        select(UsageRecord.org_id, UsageRecord.ended_at, UsageRecord.card_seconds).where(
            UsageRecord.ended_at >= datetime.fromtimestamp(horizon, tz=now.tzinfo)
        )
    )
    usage: dict[int, float] = {}
    for org_id, ended_at, card_seconds in rows:
        age = max(0.0, now.timestamp() - ended_at.timestamp())
        usage[org_id] = usage.get(org_id, 0.0) + card_seconds * math.pow(0.5, age / half_life_s)
    return usage
