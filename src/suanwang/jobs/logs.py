"""A job's output, read from the backend of the pool its launch ran on."""

from __future__ import annotations

from sqlalchemy import select
from sqlalchemy.orm import Session

from suanwang.backends.protocol import BackendError
from suanwang.backends.registry import AgentSites, backend_for_site
from suanwang.config import Settings
from suanwang.errors import NotFound, Unavailable
from suanwang.jobs.models import Job, Launch
from suanwang.supply.models import Pool


def read(
    session: Session, settings: Settings, job: Job, *, attempt: int | None, tail_bytes: int | None
) -> bytes:
    number = attempt or job.attempt
    launch = session.scalar(select(Launch).where(Launch.job_id == job.id, Launch.attempt == number))
    if launch is None or launch.handle is None:
        if attempt is not None:
            raise NotFound("job.no-such-attempt", id=job.id, attempt=attempt)
        return b""  # not launched yet: no output
    pool = session.get_one(Pool, launch.pool_id)
    site = pool.site
    try:
        agents = AgentSites(session.get_bind(), settings.agent_lost_after_s)  # type: ignore[arg-type]
        backend = backend_for_site(site, data_dir=settings.data_dir, cards=pool.cards, agents=agents)
        try:
            return backend.logs(launch.handle, tail_bytes=tail_bytes)
        finally:
            backend.close()
    except BackendError as exc:
        raise Unavailable("job.logs-unavailable", id=job.id, detail=str(exc)) from None
