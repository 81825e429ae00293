"""REST routes of the jobs slice: /jobs (submit, quote, list, get, events, cancel, logs), /reservations."""

from __future__ import annotations

from datetime import datetime
from typing import Annotated, Any

from fastapi import APIRouter, Depends, Query, Request
from fastapi.responses import JSONResponse, Response

from suanwang.api.deps import CtxDep, PageDep, bearer_token, get_now, get_settings, request_lang
from suanwang.api.idempotency import IdemDep, created
from suanwang.api.schemas import PROBLEM_RESPONSES, PageRead, page_read
from suanwang.config import Settings
from suanwang.errors import Unauthorized
from suanwang.fields import Id
from suanwang.jobs import logs, service
from suanwang.jobs.intake import SubmitIntake
from suanwang.jobs.lifecycle import JobState
from suanwang.jobs.models import Job
from suanwang.jobs.reasons import event_text, reason_text
from suanwang.jobs.schemas import (
    JobCreate,
    JobEventRead,
    JobRead,
    JobSpec,
    QuoteRead,
    ReservationCreate,
    ReservationRead,
)
from suanwang.tenants.access import Principal

router = APIRouter(tags=["jobs"], responses=PROBLEM_RESPONSES)
SettingsDep = Annotated[Settings, Depends(get_settings)]
LangDep = Annotated[str, Depends(request_lang)]
NowDep = Annotated[datetime, Depends(get_now)]
REDACTED = "***"


def job_read(job: Job, principal: Principal, lang: str) -> JobRead:
    read = JobRead.model_validate(job)
    read.reason = reason_text(job.reason_code, job.reason_params, lang)
    if not service.can_see_env(principal, job.org_id):
        read.env = dict.fromkeys(job.env, REDACTED)
    return read


@router.post("/jobs", status_code=201, response_model=JobRead)
async def submit_job(body: JobCreate, request: Request, idem: IdemDep, now: NowDep) -> JSONResponse:
    """Submit a job. Runs in the event loop: the process's intake writer authenticates, admits and
    stores it together with the submissions of other callers (group commit; see jobs/intake.py)."""
    secret = bearer_token(request)
    if secret is None:
        raise Unauthorized("auth.missing")
    intake: SubmitIntake = request.app.state.intake
    return await intake.submit(secret=secret, idem=idem, data=body, now=now)


@router.post("/jobs/quote", response_model=QuoteRead)
def quote_job(body: JobSpec, ctx: CtxDep, settings: SettingsDep, lang: LangDep) -> QuoteRead:
    """The pools that could run this job, ranked as the scheduler would choose (nothing is stored)."""
    return service.quote_job(
        session=ctx.session, settings=settings, principal=ctx.principal, data=body, now=ctx.now, lang=lang
    )


@router.get("/jobs", response_model=PageRead[JobRead])
def list_jobs(
    ctx: CtxDep,
    paging: PageDep,
    lang: LangDep,
    state: JobState | None = None,
    org_id: Id | None = None,
    pool_id: Id | None = None,
) -> dict[str, Any]:
    result = service.list_jobs(
        session=ctx.session,
        principal=ctx.principal,
        request=paging,
        state=state,
        org_id=org_id,
        pool_id=pool_id,
    )
    return page_read(result, lambda job: job_read(job, ctx.principal, lang))


@router.get("/jobs/{job_id}", response_model=JobRead)
def get_job(job_id: Id, ctx: CtxDep, lang: LangDep) -> JobRead:
    return job_read(
        service.get_job(session=ctx.session, principal=ctx.principal, job_id=job_id), ctx.principal, lang
    )


@router.get("/jobs/{job_id}/events", response_model=list[JobEventRead])
def job_events(job_id: Id, ctx: CtxDep, lang: LangDep) -> list[JobEventRead]:
    events = service.history(session=ctx.session, principal=ctx.principal, job_id=job_id)
    reads = []
    for event in events:
        read = JobEventRead.model_validate(event)
        read.text = event_text(event.cause, event.detail, lang)
        reads.append(read)
    return reads


@router.post("/jobs/{job_id}/cancel", response_model=JobRead)
def cancel_job(job_id: Id, ctx: CtxDep, lang: LangDep) -> JobRead:
    job = service.cancel(session=ctx.session, principal=ctx.principal, job_id=job_id, now=ctx.now)
    ctx.session.commit()
    return job_read(job, ctx.principal, lang)


@router.get(
    "/jobs/{job_id}/logs",
    response_class=Response,
    responses={200: {"content": {"text/plain": {}}, "description": "stdout and stderr of the latest launch"}},
)
def job_logs(
    job_id: Id,
    request: Request,
    ctx: CtxDep,
    settings: SettingsDep,
    tail_bytes: Annotated[int | None, Query(ge=1, le=64 * 1024 * 1024)] = 64 * 1024,
    download: bool = False,
    attempt: Annotated[int | None, Query(ge=1)] = None,
) -> Response:
    """The latest launch's output (or `attempt`'s); `download=true` returns all of it as a file."""
    job = service.get_job(session=ctx.session, principal=ctx.principal, job_id=job_id)
    data = logs.read(ctx.session, settings, job, attempt=attempt, tail_bytes=None if download else tail_bytes)
    headers = {}
    if download:
        headers["Content-Disposition"] = f'attachment; filename="job-{job.id}.log"'
    return Response(content=data, media_type="text/plain; charset=utf-8", headers=headers)


# --- reservations --------------------------------------------------------------------------------


@router.post("/reservations", status_code=201, response_model=ReservationRead)
def create_reservation(body: ReservationCreate, ctx: CtxDep, idem: IdemDep) -> JSONResponse:
    return created(
        ctx,
        idem,
        lambda: ReservationRead.model_validate(
            service.create_reservation(session=ctx.session, principal=ctx.principal, data=body, now=ctx.now)
        ),
    )


@router.get("/reservations", response_model=PageRead[ReservationRead])
def list_reservations(ctx: CtxDep, paging: PageDep, pool_id: Id | None = None) -> dict[str, Any]:
    result = service.list_reservations(
        session=ctx.session, principal=ctx.principal, request=paging, pool_id=pool_id
    )
    return page_read(result, ReservationRead.model_validate)


@router.get("/reservations/{reservation_id}", response_model=ReservationRead)
def get_reservation(reservation_id: Id, ctx: CtxDep) -> ReservationRead:
    return ReservationRead.model_validate(
        service.get_reservation(session=ctx.session, principal=ctx.principal, reservation_id=reservation_id)
    )


@router.post("/reservations/{reservation_id}/cancel", response_model=ReservationRead)
def cancel_reservation(reservation_id: Id, ctx: CtxDep) -> ReservationRead:
    reservation = service.cancel_reservation(
        session=ctx.session, principal=ctx.principal, reservation_id=reservation_id, now=ctx.now
    )
    ctx.session.commit()
    return ReservationRead.model_validate(reservation)
