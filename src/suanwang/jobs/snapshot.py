"""The scheduler's view of the database: pools, queued and running jobs, tenants — as of `now`.

The controller schedules from it and the quote endpoint ranks pools from it, so a quote tells what
the controller would do. Times become Unix seconds; ids become strings (the core's conventions).
Reservations: while a reservation is in force, its unused cards leave the pool and become a pool of
their own that only the reserving tenant may use (id "<pool>~r<reservation>").
"""

from __future__ import annotations

import time
from collections import defaultdict
from collections.abc import Mapping
from dataclasses import dataclass, replace
from datetime import datetime
from functools import cache
from typing import Any

from sqlalchemy import Select, func, or_, select
from sqlalchemy.orm import Session

from suanwang.backends.protocol import Capacity
from suanwang.jobs.lifecycle import JobState
from suanwang.jobs.models import Job, Launch, Reservation
from suanwang.metering import service as metering
from suanwang.nodes import service as nodes
from suanwang.scheduler import (
    Classification,
    Policy,
    PoolState,
    QueuedJob,
    RunningJob,
    Snapshot,
    TenantState,
    Zone,
    estimate,
)
from suanwang.supply.models import Phase, Pool, Provider, RateCard, Site
from suanwang.tenants.locality import is_local
from suanwang.tenants.models import Organisation, OrgKind

KIND = {
    OrgKind.ENTERPRISE: "enterprise",
    OrgKind.GOVERNMENT_UNIT: "government",
    OrgKind.RESEARCH_INSTITUTE: "research",
    OrgKind.UNIVERSITY: "university",
}


@dataclass(frozen=True, slots=True)
class PoolInfo:
    """What the controller needs about a pool beside its scheduler state: where its backend is."""

    pool: Pool
    site: Site
    provider: Provider
    price_fen_per_card_hour: int
    throughput: float = 1.0  # the scheduler's PoolState.throughput: measured by node agents, or 1


def live_pools(session: Session, now: datetime) -> dict[int, PoolInfo]:
    """Pools that may take work now: not retired, on an operational live site, with a price in force."""
    rows = session.execute(
        select(Pool, Site, Provider)
        .join(Site, Pool.site_id == Site.id)
        .join(Provider, Site.provider_id == Provider.id)
        .where(
            Pool.retired_at.is_(None),
            Site.retired_at.is_(None),
            Provider.retired_at.is_(None),
            Site.phase == Phase.OPERATIONAL,
        )
        .order_by(Pool.id)
    ).all()
    cards = session.scalars(
        select(RateCard).where(
            RateCard.pool_id.in_([pool.id for pool, _, _ in rows]),
            RateCard.retired_at.is_(None),
            RateCard.effective_from <= now,
            or_(RateCard.effective_until.is_(None), RateCard.effective_until > now),
        )
    )
    # The query keeps only the cards in force at `now` (intervals never overlap: one per pool).
    price = {card.pool_id: card.price_fen_per_card_hour for card in cards}
    live = {pool.id: pool for pool, _, _ in rows if pool.id in price}
    throughput = estimate.throughput_factors(
        {
            pool_id: (live[pool_id].accelerator, float(tflops) / count)
            for pool_id, (count, tflops) in nodes.measured_by_pool(session).items()
            if pool_id in live and count > 0
        }
    )
    return {
        pool.id: PoolInfo(pool, site, provider, price[pool.id], throughput.get(pool.id, 1.0))
        for pool, site, provider in rows
        if pool.id in price
    }


# Admission asks only what pools exist and what they are, so it reads them from a per-process cache
# that a change to any pool, site, provider or rate card invalidates (one cheap aggregate query tells),
# and that lives at most ADMISSION_TTL_S so a price coming into force is seen within that time.
ADMISSION_TTL_S = 5.0
_admission_cache: dict[str, tuple[float, tuple[Any, ...], tuple[PoolState, ...]]] = {}


@cache
def _supply_version_query() -> Select[Any]:
    """Counts, highest ids and latest changes of the supply tables: any change to them changes this."""
    parts: list[Any] = []
    for model in (Pool, Site, Provider, RateCard):
        stamp = model.created_at if model is RateCard else model.updated_at
        parts += [func.count(model.id), func.max(model.id), func.max(stamp)]
    return select(*(select(part).scalar_subquery() for part in parts))


def _supply_version(session: Session) -> tuple[Any, ...]:
    return tuple(session.execute(_supply_version_query()).one())


def admission_pools(
    session: Session, *, now: datetime, local_regions: frozenset[str]
) -> tuple[PoolState, ...]:
    """Every live pool as admission sees it: healthy (health comes and goes) and empty."""
    key = str(session.get_bind().url)
    version = _supply_version(session)
    hit = _admission_cache.get(key)
    if hit is not None and hit[0] > time.monotonic() and hit[1] == version:
        return hit[2]
    pools = tuple(
        replace(
            _pool_state(info, str(pool_id), info.pool.cards, info.pool.cards, local_regions), healthy=True
        )
        for pool_id, info in live_pools(session, now).items()
    )
    _admission_cache[key] = (time.monotonic() + ADMISSION_TTL_S, version, pools)
    return pools


def to_seconds(at: datetime) -> float:
    return at.timestamp()


QUEUED_COLUMNS = (
    Job.id,
    Job.org_id,
    Job.cards,
    Job.duration_estimate_s,
    Job.submitted_at,
    Job.cards_per_node,
    Job.accelerators,
    Job.min_memory_gib,
    Job.deadline,
    Job.max_price_fen_per_card_hour,
    Job.classification,
    Job.regions,
    Job.priority,
    Job.preemptible,
    Job.job_type,
    Job.attempt,
    Job.reason_code,
    Job.reason_params,
)


def queued_job(job: Any) -> QueuedJob:
    """A job (an ORM object or a row of QUEUED_COLUMNS) as the scheduler sees it."""
    return QueuedJob(
        id=str(job.id),
        tenant=str(job.org_id),
        cards=job.cards,
        duration_s=float(job.duration_estimate_s),
        submit_s=to_seconds(job.submitted_at),
        cards_per_node=job.cards_per_node,
        accelerators=frozenset(job.accelerators),
        min_memory_gib=job.min_memory_gib,
        deadline_s=to_seconds(job.deadline) if job.deadline else None,
        max_price_fen_per_card_hour=job.max_price_fen_per_card_hour,
        classification=Classification(job.classification),
        regions=frozenset(job.regions),
        priority=job.priority,
        preemptible=job.preemptible,
        job_type=job.job_type,
        attempt=job.attempt,
    )


def build(
    session: Session,
    *,
    now: datetime,
    policy: Policy,
    local_regions: frozenset[str],
    region_division_code: str,
    limit: int = 10_000,
    discovered: Mapping[int, Capacity] | None = None,
    extra: tuple[QueuedJob, ...] = (),
    reasons: dict[int, tuple[str | None, dict[str, Any]]] | None = None,
) -> tuple[Snapshot, dict[int, PoolInfo]]:
    """The snapshot at `now`, and the pools in it by id.

    `discovered` is what backends reported (a local machine without GPUs has 0 cards whatever was
    registered); `extra` adds jobs not stored (a quote); `reasons`, if given, receives each queued
    job's stored wait reason (the controller rewrites only those that changed).
    """
    pools = live_pools(session, now)
    active = list(
        session.execute(
            select(Job, Launch)
            .join(Launch, (Launch.job_id == Job.id) & (Launch.attempt == Job.attempt))
            .where(Job.state.in_([JobState.PLACED, JobState.RUNNING]))
        ).all()
    )
    used: dict[int, int] = defaultdict(int)
    used_by_org: dict[tuple[int, int], int] = defaultdict(int)
    running = []
    for job, launch in active:
        used[launch.pool_id] += job.cards
        used_by_org[(launch.pool_id, job.org_id)] += job.cards
        start = job.started_at or launch.sent_at or launch.recorded_at
        expected_end = launch.est_end_at or start
        running.append(
            RunningJob(
                id=str(job.id),
                tenant=str(job.org_id),
                pool_id=str(launch.pool_id),
                cards=job.cards,
                start_s=to_seconds(start),
                expected_end_s=max(to_seconds(expected_end), to_seconds(now)),
                priority=job.priority,
                preemptible=job.preemptible,
                borrowing=launch.borrowing,
            )
        )
    reservations = list(
        session.scalars(
            select(Reservation).where(
                Reservation.cancelled_at.is_(None), Reservation.starts_at <= now, Reservation.ends_at > now
            )
        )
    )
    # Cards physically free in each pool (registered size, capped by what the backend discovered).
    totals = {}
    free = {}
    for pool_id, info in pools.items():
        total = info.pool.cards
        if discovered is not None and pool_id in discovered:
            total = min(total, discovered[pool_id].cards_total)
        totals[pool_id] = total
        free[pool_id] = max(0, total - used[pool_id])
    # A reservation in force has the first claim on its pool's free cards, up to what its tenant is
    # not using yet; the rest of the pool is for everyone. (Work already running on a reservation's
    # cards when its window opens keeps running: the reservation gets cards as they free up.)
    reserved_states = []
    for reservation in reservations:
        info = pools.get(reservation.pool_id)
        if info is None:
            continue
        unused = max(0, reservation.cards - used_by_org[(reservation.pool_id, reservation.org_id)])
        claim = min(unused, free[reservation.pool_id])
        free[reservation.pool_id] -= claim
        reserved_states.append(
            _pool_state(
                info,
                f"{info.pool.id}~r{reservation.id}",
                reservation.cards,
                claim,
                local_regions,
                tenants=frozenset({str(reservation.org_id)}),
            )
        )
    states = [
        _pool_state(info, str(pool_id), totals[pool_id], free[pool_id], local_regions)
        for pool_id, info in pools.items()
    ]
    states += reserved_states
    # Plain rows, not ORM objects: a queue of 10,000 loads in a fraction of the time.
    queued = list(
        session.execute(
            select(*QUEUED_COLUMNS)
            .where(
                Job.state == JobState.QUEUED,
                Job.cancel_requested_at.is_(None),
                or_(Job.not_before.is_(None), Job.not_before <= now),
                Job.hold_fen.is_not(None),  # funded: its maximum cost is held on the wallet
            )
            .order_by(Job.priority.desc(), Job.submitted_at, Job.id)
            .limit(limit)
        )
    )
    if reasons is not None:
        reasons.update({row.id: (row.reason_code, row.reason_params) for row in queued})
    org_ids = {job.org_id for job in queued} | {job.org_id for job, _ in active}
    tenants = _tenants(session, org_ids, now, policy, region_division_code)
    snapshot = Snapshot(
        now_s=to_seconds(now),
        pools=tuple(states),
        queued=tuple(queued_job(job) for job in queued) + extra,
        running=tuple(running),
        tenants=tenants,
    )
    return snapshot, pools


def _pool_state(
    info: PoolInfo,
    pool_id: str,
    total: int,
    free: int,
    local_regions: frozenset[str],
    tenants: frozenset[str] = frozenset(),
) -> PoolState:
    return PoolState(
        id=pool_id,
        provider=str(info.provider.id),
        site=str(info.site.id),
        region=info.site.region,
        zone=Zone(info.pool.security_zone.value),
        accelerator=info.pool.accelerator,
        cards_total=total,
        cards_free=free,
        cards_per_node=info.pool.cards_per_node,
        price_fen_per_card_hour=info.price_fen_per_card_hour,
        healthy=info.pool.healthy,
        local=info.site.region in local_regions,
        tenants=tenants,
        throughput=info.throughput,
    )


def _tenants(
    session: Session, org_ids: set[int], now: datetime, policy: Policy, region_division_code: str
) -> tuple[TenantState, ...]:
    if not org_ids:
        return ()
    usage = metering.decayed_usage(session, now=now, half_life_s=policy.fairshare_half_life_s)
    orgs = session.scalars(select(Organisation).where(Organisation.id.in_(org_ids)).order_by(Organisation.id))
    return tuple(
        TenantState(
            id=str(org.id),
            weight=1.0,
            local=is_local(org.locality_code, region_division_code),
            sme=org.is_sme,
            kind=KIND[org.kind],
            usage_card_s=usage.get(org.id, 0.0),
        )
        for org in orgs
    )


def pool_id_of(scheduler_pool_id: str) -> int:
    """The database pool behind a scheduler pool id (a reservation's pool is part of its pool)."""
    return int(scheduler_pool_id.split("~", 1)[0])
