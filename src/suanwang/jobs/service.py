"""Operations of the jobs slice: submit (with admission), quote, read, cancel, history, logs, reservations.

Every state change goes through `transition()`, which checks the lifecycle and records the event in the
same transaction, so a job's history is complete by construction.
"""

from __future__ import annotations

import difflib
import tomllib
from collections import Counter
from collections.abc import Sequence
from datetime import datetime
from functools import lru_cache
from typing import Any

from sqlalchemy import Select, select
from sqlalchemy.orm import Session

from suanwang import catalog
from suanwang.config import Settings
from suanwang.db.ids import allocate_ids
from suanwang.db.query import Page, PageRequest, get_or_404, page
from suanwang.db.session import take_write_lock
from suanwang.errors import Conflict, DomainError, Forbidden, Invalid, NotFound
from suanwang.i18n import t
from suanwang.jobs import lifecycle, snapshot
from suanwang.jobs.lifecycle import JobState
from suanwang.jobs.models import Job, JobEvent, Launch, Reservation
from suanwang.jobs.schemas import JobCreate, JobSpec, QuoteRead, QuoteRow, ReservationCreate
from suanwang.scheduler import Classification, Policy, PoolState, QueuedJob, quote
from suanwang.scheduler.constraints import violation
from suanwang.settlement import service as settlement
from suanwang.supply.models import Pool
from suanwang.supply.scope import operated_pool_ids
from suanwang.tenants.access import Principal, require_role
from suanwang.tenants.models import Organisation, OrgKind, Role

QUOTE_JOB_ID = "quote"
# Why no pool passes, in the order a user should fix them (the first that rules out every pool).
BLOCKER_ORDER = ("government-zone", "accelerator", "region", "memory", "price", "node-size", "size")


def policy_for(settings: Settings) -> Policy:
    """The scheduling policy the controller runs and quotes use: the shipped suanwang policy, with the
    parameters of SUANWANG_POLICY_FILE's [policy] table (TOML, as in a simulator scenario) on top."""
    if settings.policy_file is None:
        return Policy.shipped()
    return _policy_from_file(str(settings.policy_file))


@lru_cache(maxsize=4)
def _policy_from_file(path: str) -> Policy:
    with open(path, "rb") as handle:
        table = tomllib.load(handle).get("policy", {})
    return Policy.shipped(**table)


# --- lifecycle -----------------------------------------------------------------------------------


def transition(
    session: Session, job: Job, target: JobState, *, cause: str, at: datetime, **detail: Any
) -> None:
    """Move `job` to `target` if the lifecycle allows it, and record the event (raises otherwise)."""
    current = job.state
    lifecycle.check(current, target)
    job.state = target
    if target.terminal:
        session.flush()  # the usage records of its last launch, for rating
        settlement.settle_job(session, job, at)
    session.add(
        JobEvent(
            job_id=job.id,
            at=at,
            from_state=current,
            to_state=target,
            attempt=job.attempt,
            cause=cause,
            detail=detail,
        )
    )


# --- submit and admission ------------------------------------------------------------------------


def owner_org_id(principal: Principal, requested: int | None) -> int:
    """Whose job it is: a tenant's own organisation; the regulator names one."""
    if principal.is_tenant:
        if requested is not None and requested != principal.org_id:
            raise Forbidden("job.other-org")
        assert principal.org_id is not None
        return principal.org_id
    if principal.is_regulator:
        if requested is None:
            raise Invalid("job.org-required")
        return requested
    raise Forbidden("job.tenants-only")


def check_org_open(org: Organisation | None, org_id: int) -> Organisation:
    """The owner must exist and not be retired."""
    if org is None:
        raise NotFound("not-found", what="organisation", id=org_id)
    if org.retired_at is not None:
        raise Conflict("retired", what="organisation", id=org.id)
    return org


def _owner_org(session: Session, principal: Principal, org_id: int | None) -> Organisation:
    wanted = owner_org_id(principal, org_id)
    return check_org_open(session.get(Organisation, wanted), wanted)


def _check_priority(principal: Principal, org: Organisation, spec: JobSpec) -> None:
    from suanwang.jobs.schemas import PriorityClass

    if (
        spec.priority is PriorityClass.URGENT
        and not principal.is_regulator
        and org.kind is not OrgKind.GOVERNMENT_UNIT
    ):
        raise Forbidden("job.urgent-reserved")


def _normalized(spec: JobSpec) -> JobSpec:
    """Accelerator names as the catalogue spells them; unknown ones are an error with suggestions."""
    names = []
    for name in spec.accelerators:
        found = catalog.find(name)
        if found is None:
            known = catalog.models()
            close = difflib.get_close_matches(name.upper(), known, n=3, cutoff=0.5)
            raise Invalid("job.unknown-accelerator", accelerator=name, suggestions=", ".join(close or known))
        names.append(found.model)
    return spec.model_copy(update={"accelerators": sorted(set(names))})


def _as_queued(spec: JobSpec, org_id: int, now: datetime, job_id: str = QUOTE_JOB_ID) -> QueuedJob:
    return QueuedJob(
        id=job_id,
        tenant=str(org_id),
        cards=spec.cards,
        duration_s=float(spec.duration_estimate_s),
        submit_s=now.timestamp(),
        cards_per_node=spec.cards_per_node,
        accelerators=frozenset(spec.accelerators),
        min_memory_gib=spec.min_memory_gib,
        deadline_s=spec.deadline.timestamp() if spec.deadline else None,
        max_price_fen_per_card_hour=spec.max_price_fen_per_card_hour,
        classification=spec.classification,
        regions=frozenset(spec.regions),
        priority=spec.priority.value_int,
        preemptible=spec.preemptible,
        job_type=spec.job_type,
    )


def admit(session: Session, settings: Settings, spec: JobSpec, org_id: int, now: datetime) -> None:
    """Refuse, with how to fix it, a job no live pool could ever run (SkyPilot-style feedback)."""
    pools = snapshot.admission_pools(session, now=now, local_regions=settings.local_region_set)
    check_admission(pools, spec, org_id, now)


def check_admission(pools: Sequence[PoolState], spec: JobSpec, org_id: int, now: datetime) -> QueuedJob:
    """`admit` against the live pools as admission sees them (pure); the job as the scheduler sees it."""
    if spec.deadline is not None and spec.deadline <= now:
        raise Invalid("job.deadline-past", deadline=spec.deadline.isoformat())
    if spec.cards_per_node is not None and spec.cards and spec.cards % spec.cards_per_node:
        raise Invalid("job.cards-per-node", cards=spec.cards, per_node=spec.cards_per_node)
    job = _as_queued(spec, org_id, now)
    if not pools:
        raise Invalid("job.no-pools")
    blockers = Counter(violation(job, pool) for pool in pools)
    if blockers[None]:
        return job
    if spec.classification is Classification.GOVERNMENT and blockers["government-zone"] + blockers[
        "region"
    ] >= len(pools):
        gov_regions = sorted({p.region for p in pools if p.zone.value == "government"})
        raise Invalid("job.no-government-pool", regions=", ".join(gov_regions) or "-")
    if spec.accelerators and blockers["accelerator"] == len(pools):
        offered = sorted({p.accelerator for p in pools})
        raise Invalid(
            "job.accelerator-not-offered",
            accelerators=", ".join(spec.accelerators),
            offered=", ".join(offered),
        )
    shaped = [p for p in pools if violation(job, p, check_size=False) is None]
    if shaped and blockers["size"]:
        largest = max(p.cards_total for p in shaped)
        raise Invalid("job.too-many-cards", cards=spec.cards, largest=largest)
    worst = next((b for b in BLOCKER_ORDER if blockers[b]), "size")
    detail = ", ".join(f"{b} {n}" for b, n in blockers.most_common() if b)
    raise Invalid("job.no-pool", blocker=worst, detail=detail)


def prepare_job(
    *,
    principal: Principal,
    org: Organisation,
    data: JobCreate,
    pools: Sequence[PoolState],
    policy: Policy,
    now: datetime,
) -> dict[str, Any]:
    """Admission of one submission (pure): the new job's column values, or a DomainError saying why not.
    `hold_fen` is the most it can cost, to be held on the tenant's wallet (settlement.place_holds)."""
    spec = _normalized(data)
    _check_priority(principal, org, spec)
    hold = settlement.hold_amount(check_admission(pools, spec, org.id, now), pools, policy)
    values = spec.model_dump(exclude={"org_id", "priority"})
    # Born queued: `born_events` records both steps in its history.
    lifecycle.check(JobState.SUBMITTED, JobState.QUEUED)
    return values | {
        "org_id": org.id,
        "submitted_by": principal.user_id,
        "priority": spec.priority.value_int,
        "state": JobState.QUEUED,
        "attempt": 0,
        "submitted_at": now,
        "reason_params": {},
        "hold_fen": hold,
    }


def born_events(now: datetime) -> list[dict[str, Any]]:
    """The history of a job just admitted: submitted, then queued."""
    return [
        {"at": now, "from_state": None, "to_state": JobState.SUBMITTED, "attempt": 0, "cause": "submitted"},
        {
            "at": now,
            "from_state": JobState.SUBMITTED,
            "to_state": JobState.QUEUED,
            "attempt": 0,
            "cause": "admitted",
        },
    ]


def submit(
    *, session: Session, settings: Settings, principal: Principal, data: JobCreate, now: datetime
) -> Job:
    org = _owner_org(session, principal, data.org_id)
    pools = snapshot.admission_pools(session, now=now, local_regions=settings.local_region_set)
    values = prepare_job(
        principal=principal, org=org, data=data, pools=pools, policy=policy_for(settings), now=now
    )
    job_id = allocate_ids(session, Job, 1)[0]
    values = fund(session, settings, [(job_id, values)], now)[0]
    if isinstance(values, DomainError):
        raise values
    job = Job(id=job_id, **values)
    job.events = [JobEvent(**event, detail={}) for event in born_events(now)]
    session.add(job)
    session.flush()  # one INSERT round for the job and its events
    return job


def fund(
    session: Session, settings: Settings, jobs: Sequence[tuple[int, dict[str, Any]]], now: datetime
) -> list[dict[str, Any] | DomainError]:
    """Hold each admitted job's maximum cost on its wallet (one ledger batch). A job the wallet cannot
    cover is refused (402) or, with SUANWANG_UNFUNDED=queue, kept unfunded to wait for a top-up."""
    holds = [settlement.Hold(job_id, values["org_id"], values["hold_fen"]) for job_id, values in jobs]
    answers = settlement.place_holds(session, holds, now)
    funded: list[dict[str, Any] | DomainError] = []
    for (_, values), answer in zip(jobs, answers, strict=True):
        if answer is None:
            funded.append(values)
        elif settings.unfunded == "queue":
            funded.append(
                values | {"hold_fen": None, "reason_code": "waiting-funds", "reason_params": answer.params}
            )
        else:
            funded.append(answer)
    return funded


def quote_job(
    *,
    session: Session,
    settings: Settings,
    principal: Principal,
    data: JobSpec,
    now: datetime,
    lang: str = "en",
) -> QuoteRead:
    org = _owner_org(session, principal, data.org_id)
    spec = _normalized(data)
    policy = policy_for(settings)
    job = _as_queued(spec, org.id, now)
    snap, pools = snapshot.build(
        session,
        now=now,
        policy=policy,
        local_regions=settings.local_region_set,
        region_division_code=settings.region_division_code,
        extra=(job,),
    )
    rows = []
    for option in quote(job, snap, policy):
        info = pools[snapshot.pool_id_of(option.pool.id)]
        rows.append(
            QuoteRow(
                pool_id=info.pool.id,
                pool_code=info.pool.code,
                provider=info.provider.code,
                region=option.pool.region,
                accelerator=option.pool.accelerator,
                zone=option.pool.zone.value,
                price_fen_per_card_hour=option.pool.price_fen_per_card_hour,
                start_at=datetime.fromtimestamp(option.start_s, tz=now.tzinfo),
                runtime_s=round(option.runtime_s),
                end_at=datetime.fromtimestamp(option.end_s, tz=now.tzinfo),
                cost_fen=option.cost_fen,
                meets_deadline=None if job.deadline_s is None else option.end_s <= job.deadline_s,
                starts_now=option.start_s <= snap.now_s,
                reserved=bool(option.pool.tenants),
            )
        )
    note = None
    if not rows:
        try:
            admit(session, settings, spec, org.id, now)
        except DomainError as exc:
            note = exc.message(lang)
        else:
            note = t("job.quote-none-now", lang)
    return QuoteRead(rows=rows, note=note)


# --- read ----------------------------------------------------------------------------------------


def _visible(principal: Principal, stmt: Select[tuple[Job]]) -> Select[tuple[Job]]:
    """Tenants see their organisation's jobs; operators the jobs on their pools; the regulator all."""
    if principal.is_regulator:
        return stmt
    if principal.is_tenant:
        return stmt.where(Job.org_id == principal.org_id)
    if principal.role is Role.PROVIDER_OPERATOR and principal.provider_id is not None:
        on_own = select(Launch.job_id).where(Launch.pool_id.in_(operated_pool_ids(principal.provider_id)))
        return stmt.where(Job.id.in_(on_own))
    return stmt.where(Job.id.is_(None))


def get_job(*, session: Session, principal: Principal, job_id: int) -> Job:
    job = session.scalar(_visible(principal, select(Job).where(Job.id == job_id)))
    if job is None:
        raise NotFound("not-found", what="job", id=job_id)
    return job


def list_jobs(
    *,
    session: Session,
    principal: Principal,
    request: PageRequest,
    state: JobState | None = None,
    org_id: int | None = None,
    pool_id: int | None = None,
) -> Page[Job]:
    stmt = _visible(principal, select(Job))
    if state is not None:
        stmt = stmt.where(Job.state == state)
    if org_id is not None:
        stmt = stmt.where(Job.org_id == org_id)
    if pool_id is not None:
        stmt = stmt.where(Job.pool_id == pool_id)
    sortable = {
        "id": Job.id,
        "submitted_at": Job.submitted_at,
        "state": Job.state,
        "priority": Job.priority,
        "cards": Job.cards,
    }
    return page(session, stmt, request, sortable=sortable, default_sort="-id")


def history(*, session: Session, principal: Principal, job_id: int) -> list[JobEvent]:
    job = get_job(session=session, principal=principal, job_id=job_id)
    return list(session.scalars(select(JobEvent).where(JobEvent.job_id == job.id).order_by(JobEvent.id)))


def can_see_env(principal: Principal, org_id: int) -> bool:
    """The environment may hold the tenant's secrets: only its own members read it."""
    return principal.is_tenant and principal.org_id == org_id


# --- cancel --------------------------------------------------------------------------------------


def cancel(*, session: Session, principal: Principal, job_id: int, now: datetime) -> Job:
    job = get_job(session=session, principal=principal, job_id=job_id)
    if not (principal.is_regulator or principal.belongs_to(job.org_id)):
        raise Forbidden("job.cancel-own")
    job = lock_job(session, job.id)  # the controller may be placing it right now: decide on what it wrote
    if job.state is JobState.CANCELLED:
        return job  # a retried cancel (its first answer was lost) gets the same answer
    if job.state.terminal:
        raise Conflict("job.already-ended", id=job.id, state=job.state.value)
    if job.state in (JobState.SUBMITTED, JobState.QUEUED, JobState.PREEMPTED, JobState.LOST):
        transition(session, job, JobState.CANCELLED, cause="cancelled", at=now, by=principal.name)
        job.ended_at = now
        job.reason_code = None
    elif job.cancel_requested_at is None:
        # Placed or running: the controller stops it on its backend, then records the end it reports.
        job.cancel_requested_at = now
        session.add(
            JobEvent(
                job_id=job.id,
                at=now,
                from_state=job.state,
                to_state=job.state,
                attempt=job.attempt,
                cause="cancel-requested",
                detail={"by": principal.name},
            )
        )
    session.flush()
    return job


def lock_job(session: Session, job_id: int) -> Job:
    """The job as committed now, locked until this transaction ends (SQLite: this connection becomes
    the writer), so a cancel and the controller's placement never both act on a stale state."""
    take_write_lock(session)
    stmt = select(Job).where(Job.id == job_id).with_for_update().execution_options(populate_existing=True)
    return session.scalars(stmt).one()


# --- reservations --------------------------------------------------------------------------------


def create_reservation(
    *, session: Session, principal: Principal, data: ReservationCreate, now: datetime
) -> Reservation:
    org = _owner_org(session, principal, data.org_id)
    if principal.is_tenant:
        require_role(principal, Role.TENANT_ADMIN)
    pool = get_or_404(session, Pool, data.pool_id, what="pool")
    if pool.retired_at is not None:
        raise Conflict("retired", what="pool", id=pool.id)
    if pool.id not in snapshot.live_pools(session, now):
        raise Conflict("reservation.pool-not-open", pool=pool.id)
    if data.ends_at <= now:
        raise Invalid("reservation.in-past")
    overlapping = session.scalars(
        select(Reservation).where(
            Reservation.pool_id == pool.id,
            Reservation.cancelled_at.is_(None),
            Reservation.starts_at < data.ends_at,
            Reservation.ends_at > data.starts_at,
        )
    )
    # Reservations never promise more than the pool has: the most reserved at any instant of the window.
    held = _peak(list(overlapping), data.starts_at, data.ends_at)
    if held + data.cards > pool.cards:
        raise Conflict("reservation.full", pool=pool.id, free=max(0, pool.cards - held), cards=data.cards)
    reservation = Reservation(
        org_id=org.id,
        pool_id=pool.id,
        cards=data.cards,
        starts_at=data.starts_at,
        ends_at=data.ends_at,
        created_by=principal.user_id,
    )
    session.add(reservation)
    session.flush()
    return reservation


def _peak(reservations: list[Reservation], start: datetime, end: datetime) -> int:
    points = sorted(
        [(max(r.starts_at, start), r.cards) for r in reservations]
        + [(min(r.ends_at, end), -r.cards) for r in reservations],
        key=lambda p: (p[0], p[1]),  # ends before starts at the same instant: [start, end) windows
    )
    held = peak = 0
    for _, delta in points:
        held += delta
        peak = max(peak, held)
    return peak


def _visible_reservations(
    principal: Principal, stmt: Select[tuple[Reservation]]
) -> Select[tuple[Reservation]]:
    if principal.is_regulator:
        return stmt
    if principal.is_tenant:
        return stmt.where(Reservation.org_id == principal.org_id)
    if principal.role is Role.PROVIDER_OPERATOR and principal.provider_id is not None:
        return stmt.where(Reservation.pool_id.in_(operated_pool_ids(principal.provider_id)))
    return stmt.where(Reservation.id.is_(None))


def list_reservations(
    *, session: Session, principal: Principal, request: PageRequest, pool_id: int | None = None
) -> Page[Reservation]:
    stmt = _visible_reservations(principal, select(Reservation))
    if pool_id is not None:
        stmt = stmt.where(Reservation.pool_id == pool_id)
    sortable = {"id": Reservation.id, "starts_at": Reservation.starts_at, "pool_id": Reservation.pool_id}
    return page(session, stmt, request, sortable=sortable)


def get_reservation(*, session: Session, principal: Principal, reservation_id: int) -> Reservation:
    found = session.scalar(
        _visible_reservations(principal, select(Reservation).where(Reservation.id == reservation_id))
    )
    if found is None:
        raise NotFound("not-found", what="reservation", id=reservation_id)
    return found


def cancel_reservation(
    *, session: Session, principal: Principal, reservation_id: int, now: datetime
) -> Reservation:
    reservation = get_reservation(session=session, principal=principal, reservation_id=reservation_id)
    if not principal.is_regulator:
        if not principal.belongs_to(reservation.org_id):
            raise Forbidden("job.cancel-own")
        require_role(principal, Role.TENANT_ADMIN)  # as for creating one
    if reservation.cancelled_at is None:
        reservation.cancelled_at = now
        session.flush()
    return reservation
