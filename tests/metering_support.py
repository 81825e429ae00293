"""Launches to meter and usage CloudEvents about them, shared by the metering tests.

Launches are inserted directly (a running job with one launch on a pool), as the controller records
them before it sends them to a backend; the tests of the controller itself cover how they get there.
"""

from __future__ import annotations

import itertools
from datetime import datetime, timedelta
from typing import Any

from sqlalchemy import Engine, func, select

from suanwang.db.session import session_scope
from suanwang.jobs.lifecycle import JobState
from suanwang.jobs.models import Job, Launch
from suanwang.metering.models import SeenEvent, UsageRecord
from suanwang.scheduler.types import Classification
from tests.conftest import NOW

_seq = itertools.count(1)
STARTED = NOW - timedelta(hours=2)
ENDED = NOW - timedelta(hours=1)
CLOUDEVENTS_BATCH = {"Content-Type": "application/cloudevents-batch+json"}


def insert_launches(
    engine: Engine, *, pool_id: int, org_id: int, user_id: int, count: int = 1, cards: int = 8
) -> list[str]:
    """`count` running jobs of `cards` cards, each with one launch on the pool; the launches' names."""
    names = []
    with session_scope(engine) as session:
        for _ in range(count):
            n = next(_seq)
            job = Job(
                org_id=org_id,
                submitted_by=user_id,
                command=["python", "train.py"],
                env={},
                cards=cards,
                accelerators=[],
                min_memory_gib=0,
                duration_estimate_s=3600,
                classification=Classification.PUBLIC,
                regions=[],
                priority=0,
                preemptible=False,
                state=JobState.RUNNING,
                attempt=1,
                pool_id=pool_id,
                reason_params={},
                submitted_at=STARTED - timedelta(minutes=1),
                started_at=STARTED,
                card_seconds=0,
            )
            session.add(job)
            session.flush()
            name = f"swtest-{job.id}-1-{n}"
            session.add(
                Launch(
                    job_id=job.id,
                    attempt=1,
                    pool_id=pool_id,
                    name=name,
                    handle=f"slurm-{n}",
                    remote_state="running",
                    recorded_at=STARTED - timedelta(seconds=5),
                    sent_at=STARTED - timedelta(seconds=4),
                    started_at=STARTED,
                )
            )
            names.append(name)
    return names


def event(
    launch: str,
    *,
    event_id: str | None = None,
    source: str = "/providers/p1/agents/node-1",
    started_at: datetime = STARTED,
    ended_at: datetime = ENDED,
    cards: int = 8,
    **data: Any,
) -> dict[str, Any]:
    """A valid usage CloudEvent about one launch; `data` adds or replaces fields of its data."""
    return {
        "specversion": "1.0",
        "id": event_id or f"evt-{next(_seq)}",
        "source": source,
        "type": "cn.suanwang.usage.v1",
        "time": ended_at.isoformat(),
        "subject": launch,
        "data": {
            "launch": launch,
            "started_at": started_at.isoformat(),
            "ended_at": ended_at.isoformat(),
            "cards": cards,
        }
        | data,
    }


def counts(engine: Engine) -> tuple[int, int]:
    """(usage records, seen marks) in the database."""
    with session_scope(engine) as session:
        records = session.scalar(select(func.count()).select_from(UsageRecord)) or 0
        marks = session.scalar(select(func.count()).select_from(SeenEvent)) or 0
    return records, marks
