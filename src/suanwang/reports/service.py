"""Region reports for the regulator's dashboard: who used the region's compute, how busy the pools were,
and how long tenants waited. Read only: the queries are here, the arithmetic is in `rules`.

Tenant classes: `local_sme` (an enterprise flagged SME, registered inside the platform's region —
`settings.region_division_code`), `local_other` (every other local organisation) and `outside`.

Available capacity (utilization): a pool counts while its site is operational, from the site's
`operational_on` day (Asia/Shanghai midnight; since ever when unset) until the pool, its site or its
provider was retired, with its present cards (nodes × cards per node). The schema keeps no history of
card counts or phases, so those are taken as of now: a resized pool counts at its present size
throughout, and a pool of a site that is not operational now counts nothing. Its record's `created_at`
is when it was registered, not when its cards came, so it is not a bound. Usage is counted on every
pool in scope whatever its state, so usage on cards not counted as available shows as utilization
above 100 % (or "—" with nothing available), never hidden.
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from datetime import datetime, time
from decimal import Decimal
from functools import lru_cache
from typing import Any

from sqlalchemy import ColumnElement, select
from sqlalchemy.orm import Session

from suanwang.catalog import catalog
from suanwang.config import Settings
from suanwang.errors import Invalid
from suanwang.jobs.lifecycle import JobState
from suanwang.jobs.models import Job
from suanwang.metering.models import UsageRecord
from suanwang.reports import rules
from suanwang.reports.schemas import (
    ComputeRead,
    GroupUtilization,
    LocalShareRead,
    QueueNowRead,
    QueueRead,
    QueueStatsRead,
    SharePeriodRead,
    ShareRead,
    UtilizationFigures,
    UtilizationPeriodRead,
    UtilizationRead,
    WaitPeriodRead,
    WaitRowRead,
    WaitsRead,
    WaitStatsRead,
    Window,
)
from suanwang.supply.models import Phase, Pool, Provider, Site
from suanwang.tenants.access import Principal, require_regulator, require_role
from suanwang.tenants.locality import is_local
from suanwang.tenants.models import Organisation, OrgKind, Role
from suanwang.timeutil import SHANGHAI, require_aware

# Waiting for cards: new, queued, or passing back to the queue after a preemption or a lost launch.
WAITING_STATES = (JobState.SUBMITTED, JobState.QUEUED, JobState.PREEMPTED, JobState.LOST)
_ROWS_PER_FETCH = 5000  # usage is streamed, never all held at once


# --- the window --------------------------------------------------------------------------------


def _spans(start: datetime, end: datetime, period: str) -> tuple[rules.Span, ...]:
    """The report's periods, or a clear error for an unknown period, an empty or a too long window."""
    if period not in rules.PERIODS:
        raise Invalid("report.unknown-period", period=period, known=", ".join(rules.PERIODS))
    start = rules.whole_seconds(require_aware(start, name="from"))
    end = rules.whole_seconds(require_aware(end, name="to"))
    if end <= start:
        raise Invalid("report.empty-window", start=start.isoformat(), end=end.isoformat())
    if rules.count_periods(start, end, period) > rules.MAX_PERIODS:
        raise Invalid(
            "report.too-many-periods",
            start=start.isoformat(),
            end=end.isoformat(),
            period=period,
            max=rules.MAX_PERIODS,
        )
    return rules.spans(start, end, period)


def _window(periods: Sequence[rules.Span], period: str) -> Window:
    return Window(start=periods[0].start, end=periods[-1].end, period=period)


def _period(span: rules.Span) -> dict[str, Any]:
    return {"period": span.label, "start": span.start, "end": span.end}


def _overlapping(periods: Sequence[rules.Span]) -> list[ColumnElement[bool]]:
    """Usage records that meet the window (one of no duration at its start included)."""
    return [UsageRecord.ended_at >= periods[0].start, UsageRecord.started_at < periods[-1].end]


def _class(locality_code: str, is_sme: bool, kind: OrgKind, settings: Settings) -> str:
    return rules.tenant_class(
        local=is_local(locality_code, settings.region_division_code),
        sme=is_sme,
        enterprise=kind is OrgKind.ENTERPRISE,
    )


# The organisation's columns its class needs, joined to usage and jobs (one query, not one per org).
_ORG = (Organisation.locality_code, Organisation.is_sme, Organisation.kind)


@lru_cache(maxsize=256)
def _tflops(model: str) -> Decimal:
    """Dense TFLOPS per card; 0 for a model the catalogue no longer has (pools are checked against it)."""
    found = catalog.find(model)
    return found.dense_fp16_tflops if found else Decimal(0)


# --- local share -------------------------------------------------------------------------------


def _compute(value: rules.Compute) -> ComputeRead:
    return ComputeRead(
        card_seconds=value.card_seconds, card_hours=value.card_hours, pflops_hours=value.pflops_hours
    )


def _share(share: rules.Share) -> dict[str, Any]:
    return {
        "classes": {c: _compute(v) for c, v in share.by_class.items()},
        "total": _compute(share.total),
        "local_card_seconds": share.local.card_seconds,
        "local_share_bp": share.local_share_bp,
        "local_share": share.local_share,
    }


def local_share(
    *, session: Session, principal: Principal, settings: Settings, start: datetime, end: datetime, period: str
) -> LocalShareRead:
    """Card-hours and PFLOPS·h used per tenant class, per period and over [start, end); regulator only."""
    require_regulator(principal)
    periods = _spans(start, end, period)
    stmt = (
        select(
            UsageRecord.card_seconds, UsageRecord.started_at, UsageRecord.ended_at, Pool.accelerator, *_ORG
        )
        .join(Pool, Pool.id == UsageRecord.pool_id)
        .join(Organisation, Organisation.id == UsageRecord.org_id)
        .where(*_overlapping(periods))
        .execution_options(yield_per=_ROWS_PER_FETCH)
    )
    usages = (
        rules.Usage(_class(locality, sme, kind, settings), card_seconds, started, ended, _tflops(model))
        for card_seconds, started, ended, model, locality, sme, kind in session.execute(stmt)
    )
    report = rules.local_share(usages, periods)
    return LocalShareRead(
        window=_window(periods, period),
        region_division_code=settings.region_division_code,
        periods=[SharePeriodRead(**_period(span), **_share(share)) for span, share in report.periods],
        total=ShareRead(**_share(report.total)),
    )


# --- utilization -------------------------------------------------------------------------------


def _group_key(group: str, pool: Pool, site: Site, provider: Provider) -> str:
    if group == "provider":
        return provider.code
    if group == "pool":
        return pool.code
    if group == "region":
        return site.region
    found = catalog.find(pool.accelerator)
    return found.model if found else pool.accelerator.strip().upper()


def _capacity(key: str, pool: Pool, site: Site, provider: Provider) -> rules.Capacity | None:
    """The pool's cards while its site is operational and it is not retired (see the module's notes)."""
    if site.phase is not Phase.OPERATIONAL:
        return None
    retired = [at for at in (pool.retired_at, site.retired_at, provider.retired_at) if at is not None]
    opened = None
    if site.operational_on is not None:
        opened = datetime.combine(site.operational_on, time(), SHANGHAI)
    return rules.Capacity(key, pool.cards, opened, min(retired) if retired else None)


def _figures(value: rules.Utilization) -> dict[str, Any]:
    return {
        "used_card_seconds": value.used_card_seconds,
        "available_card_seconds": value.available_card_seconds,
        "used_card_hours": rules.hours(value.used_card_seconds),
        "available_card_hours": rules.hours(value.available_card_seconds),
        "utilization_bp": value.utilization_bp,
        "utilization": value.utilization,
    }


def _by_group(values: Mapping[str, rules.Utilization], groups: Sequence[str]) -> list[GroupUtilization]:
    return [GroupUtilization(group=g, **_figures(values[g])) for g in groups]


def utilization(
    *, session: Session, principal: Principal, start: datetime, end: datetime, period: str, group: str
) -> UtilizationRead:
    """Used ÷ available card-hours per period and group over [start, end). The regulator sees every
    pool; a provider's operator only its own provider's pools; tenants are refused."""
    require_role(principal, Role.REGULATOR, Role.PROVIDER_OPERATOR)
    if group not in rules.GROUPS:
        raise Invalid("report.unknown-group", group=group, known=", ".join(rules.GROUPS))
    periods = _spans(start, end, period)
    scope = [] if principal.is_regulator else [Site.provider_id == principal.provider_id]
    pools = (
        select(Pool, Site, Provider)
        .join(Site, Site.id == Pool.site_id)
        .join(Provider, Provider.id == Site.provider_id)
        .where(*scope)
    )
    keys: dict[int, str] = {}
    capacities: list[rules.Capacity] = []
    for pool, site, provider in session.execute(pools):
        keys[pool.id] = _group_key(group, pool, site, provider)
        capacity = _capacity(keys[pool.id], pool, site, provider)
        if capacity is not None:
            capacities.append(capacity)
    used = (
        select(UsageRecord.pool_id, UsageRecord.card_seconds, UsageRecord.started_at, UsageRecord.ended_at)
        .join(Pool, Pool.id == UsageRecord.pool_id)
        .join(Site, Site.id == Pool.site_id)
        .where(*_overlapping(periods), *scope)
        .execution_options(yield_per=_ROWS_PER_FETCH)
    )
    usages = (
        rules.Usage(keys[pool_id], card_seconds, started, ended)
        for pool_id, card_seconds, started, ended in session.execute(used)
    )
    report = rules.utilization(usages, capacities, periods)
    return UtilizationRead(
        window=_window(periods, period),
        group=group,
        periods=[
            UtilizationPeriodRead(
                **_period(row.span),
                groups=_by_group(row.by_group, report.groups),
                total=UtilizationFigures(**_figures(row.total)),
            )
            for row in report.periods
        ],
        groups=_by_group(report.by_group, report.groups),
        total=UtilizationFigures(**_figures(report.total)),
    )


# --- queue and waiting times -------------------------------------------------------------------


def _wait_row(row: rules.WaitRow) -> dict[str, Any]:
    def read(stats: rules.WaitStats) -> WaitStatsRead:
        return WaitStatsRead.model_validate(stats, from_attributes=True)

    return {
        "classes": {c: read(s) for c, s in row.by_class.items()},
        "everyone_else": read(row.everyone_else),
        "all": read(row.all),
    }


def _queue_now(row: rules.QueueRow, now: datetime) -> QueueNowRead:
    def read(stats: rules.QueueStats) -> QueueStatsRead:
        return QueueStatsRead.model_validate(stats, from_attributes=True)

    return QueueNowRead(
        at=now,
        classes={c: read(s) for c, s in row.by_class.items()},
        everyone_else=read(row.everyone_else),
        all=read(row.all),
    )


def queue(
    *,
    session: Session,
    principal: Principal,
    settings: Settings,
    start: datetime,
    end: datetime,
    period: str,
    now: datetime,
) -> QueueRead:
    """Waits of the jobs that started in [start, end) per tenant class and period, and the queue at
    `now`; regulator only. A job waits from its submission to its first start; a job back in the queue
    after a preemption counts from its submission too (a job keeps no time of its requeue)."""
    require_regulator(principal)
    periods = _spans(start, end, period)
    now = require_aware(now, name="now")
    started = (
        select(Job.submitted_at, Job.started_at, *_ORG)
        .join(Organisation, Organisation.id == Job.org_id)
        .where(Job.started_at >= periods[0].start, Job.started_at < periods[-1].end)
    )
    waits = [
        rules.Wait(_class(locality, sme, kind, settings), began, rules.wait_seconds(submitted, began))
        for submitted, began, locality, sme, kind in session.execute(started)
        if began is not None
    ]
    waiting = (
        select(Job.cards, Job.submitted_at, *_ORG)
        .join(Organisation, Organisation.id == Job.org_id)
        .where(Job.state.in_(WAITING_STATES))
    )
    queued = [
        rules.Queued(_class(locality, sme, kind, settings), cards, submitted)
        for cards, submitted, locality, sme, kind in session.execute(waiting)
    ]
    report = rules.waits(waits, periods)
    return QueueRead(
        window=_window(periods, period),
        waits=WaitsRead(
            periods=[WaitPeriodRead(**_period(span), **_wait_row(row)) for span, row in report.periods],
            total=WaitRowRead(**_wait_row(report.total)),
        ),
        queue=_queue_now(rules.queue_now(queued, now), now),
    )
