"""A living demo region: the demo tenants submit work now and then, through the jobs service.

Small CPU jobs go to the sandbox (this machine: real processes, real output); GPU jobs of assorted
sizes go wherever the scheduler places them on the simulated pools. Seeded, so a demo is repeatable;
it keeps at most `max_open` jobs queued or running, so a demo left on does not grow without bound.
"""

from __future__ import annotations

import logging
import random
import threading
from datetime import datetime

from sqlalchemy import Engine, func, select

from suanwang.config import Settings
from suanwang.db.session import session_scope
from suanwang.errors import DomainError
from suanwang.jobs import service as jobs
from suanwang.jobs.lifecycle import JobState
from suanwang.jobs.models import Job
from suanwang.jobs.schemas import JobCreate
from suanwang.tenants.access import Principal
from suanwang.tenants.models import Organisation, OrgKind, Role, User
from suanwang.timeutil import utcnow

log = logging.getLogger(__name__)
SANDBOX_REGION = "pinghu-sandbox"
OPEN = (JobState.QUEUED, JobState.PLACED, JobState.RUNNING)


def next_spec(rng: random.Random, org: Organisation, now: datetime) -> JobCreate:
    """One job as a demo tenant would submit it."""
    if rng.random() < 0.3:
        seconds = rng.randint(2, 8)
        return JobCreate(
            name="sandbox hello",
            command=[
                "python3",
                "-c",
                f"import platform,time; print('hello from', platform.node()); time.sleep({seconds})",
            ],
            cards=0,
            duration_estimate_s=seconds,
            regions=[SANDBOX_REGION],
        )
    government = org.kind is OrgKind.GOVERNMENT_UNIT
    cards = rng.choice([1, 1, 2, 4, 8, 8, 16, 32])
    return JobCreate(
        name=rng.choice(["fine-tune", "inference batch", "training", "evaluation"]),
        command=["train.sh", "--epochs", str(rng.randint(1, 5))],
        cards=cards,
        cards_per_node=8 if cards >= 8 else None,
        accelerators=rng.choice([[], [], ["H800", "H100-SXM"], ["A800"], ["ASCEND-910B", "A800"]]),
        duration_estimate_s=rng.randint(1_800, 8 * 3_600),
        classification="government" if government else "public",
        preemptible=rng.random() < 0.3,
    )


class DemoWorkload:
    def __init__(
        self,
        settings: Settings,
        engine: Engine,
        *,
        seed: int = 7,
        interval_s: float = 6.0,
        max_open: int = 40,
    ) -> None:
        self.settings = settings
        self.engine = engine
        self.rng = random.Random(seed)
        self.interval_s = interval_s
        self.max_open = max_open

    def step(self) -> Job | None:
        """Submit one job if fewer than max_open are open; returns it (None when the region is full)."""
        now = utcnow()
        with session_scope(self.engine, actor="demo:workload") as session:
            open_jobs = session.scalar(select(func.count()).select_from(Job).where(Job.state.in_(OPEN))) or 0
            if open_jobs >= self.max_open:
                return None
            admins = list(
                session.execute(
                    select(User, Organisation)
                    .join(Organisation, Organisation.id == User.org_id)
                    .where(User.role == Role.TENANT_ADMIN, User.retired_at.is_(None))
                    .order_by(User.id)
                ).all()
            )
            if not admins:
                return None
            user, org = self.rng.choice(admins)
            principal = Principal(user_id=user.id, name=user.name, role=user.role, org_id=org.id)
            spec = next_spec(self.rng, org, now)
            try:
                return jobs.submit(
                    session=session, settings=self.settings, principal=principal, data=spec, now=now
                )
            except (
                DomainError
            ) as exc:  # e.g. an accelerator this region does not offer: try another next time
                log.info("demo workload skipped a job: %s", exc)
                session.rollback()
                return None

    def run(self, stop: threading.Event) -> None:
        while not stop.is_set():
            try:
                self.step()
            except Exception:
                log.exception("demo workload step failed")
            stop.wait(self.interval_s)
