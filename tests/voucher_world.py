"""A voucher programme on the execution world: the Pinghu preset opened around today, a grant for the
world's tenant, and a way to end a job with a given usage on a given pool (settling it, as the
controller does)."""

from __future__ import annotations

from datetime import date, timedelta
from typing import Any

from sqlalchemy import Engine, select, update

from suanwang.db.session import session_scope
from suanwang.jobs.lifecycle import JobState
from suanwang.jobs.models import Job
from suanwang.jobs.service import transition
from suanwang.ledger import store as ledger
from suanwang.timeutil import utcnow
from suanwang.vouchers.models import VoucherRedemption
from tests.jobs_world import ExecWorld
from tests.settlement_crash import add_ended_launch


def programme(regulator: Any, expect: int = 201, **fields: Any) -> dict[str, Any]:
    """The Pinghu preset, open from a month ago for a year (so the tests do not depend on the date)."""
    today = utcnow().date()
    body = {
        "preset": "pinghu-2026",
        "code": f"pinghu-test-{today.isoformat()}",
        "starts_on": (today - timedelta(days=30)).isoformat(),
        "ends_on": (today + timedelta(days=365)).isoformat(),
    } | fields
    return dict(regulator.post("/vouchers/programmes", body, expect=expect))


def grant(ew: ExecWorld, programme_id: int, amount_fen: int, api: Any | None = None) -> dict[str, Any]:
    """Apply as the world's tenant admin and have the regulator approve the amount; the grant."""
    application = (api or ew.tenant).post(
        "/vouchers/applications",
        {"programme_id": programme_id, "requested_fen": amount_fen, "purpose": "model training"},
    )
    reviewed = ew.regulator.post(
        f"/vouchers/applications/{application['id']}/review",
        {"decision": "approve", "reason": "complete file"},
        expect=200,
    )
    return dict(ew.regulator.get(f"/vouchers/grants/{reviewed['grant_id']}"))


def run_job(
    ew: ExecWorld, pool_id: int, *, cards: int = 8, seconds: int = 3600, **spec: Any
) -> dict[str, Any]:
    """Submit a job, give it an ended launch of `cards` × `seconds` on the pool and end it (settling it)."""
    body = {"cards": cards, "duration_estimate_s": max(seconds, 60), "accelerators": []} | spec
    job = ew.submit(**body)
    end_job(ew.engine, job["id"], pool_id, cards=cards, seconds=seconds)
    return dict(ew.regulator.get(f"/jobs/{job['id']}"))


def end_job(engine: Engine, job_id: int, pool_id: int, *, cards: int, seconds: int) -> None:
    now = utcnow()
    with session_scope(engine) as session:
        add_ended_launch(session, job_id, pool_id, cards=cards, seconds=seconds, end=now, attempt=1)
        session.execute(
            update(Job).where(Job.id == job_id).values(state=JobState.RUNNING, attempt=1, pool_id=pool_id)
        )
        session.flush()
        job = session.get_one(Job, job_id)
        job.ended_at, job.exit_code = now, 0
        transition(session, job, JobState.SUCCEEDED, cause="succeeded", at=now, exit_code=0)


def redemptions(engine: Engine, job_id: int) -> list[VoucherRedemption]:
    with session_scope(engine) as session:
        rows = list(session.scalars(select(VoucherRedemption).where(VoucherRedemption.job_id == job_id)))
        for row in rows:
            session.expunge(row)
        return rows


def balance(engine: Engine, key: str) -> int:
    """credits − debits (posted) of the account `key`."""
    with session_scope(engine) as session:
        account = ledger.get_account(session, key=key)
        assert account is not None, key
        return account.credits_posted - account.debits_posted


def today() -> date:
    return utcnow().date()
