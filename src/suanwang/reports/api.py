"""REST routes of the region reports: /reports/local-share, /reports/utilization, /reports/queue.

The regulator sees every report; a provider's operator sees utilization of its own provider's pools;
tenants are refused. Period and group are checked by the service, so the dashboard calling it directly
gets the same clear errors.
"""

from __future__ import annotations

from typing import Annotated

from fastapi import APIRouter, Depends, Query

from suanwang.api.deps import CtxDep, get_settings
from suanwang.api.schemas import PROBLEM_RESPONSES
from suanwang.config import Settings
from suanwang.fields import UtcDatetime
from suanwang.reports import rules, service
from suanwang.reports.schemas import LocalShareRead, QueueRead, UtilizationRead

router = APIRouter(prefix="/reports", tags=["reports"], responses=PROBLEM_RESPONSES)

SettingsDep = Annotated[Settings, Depends(get_settings)]
FromQuery = Annotated[UtcDatetime, Query(alias="from", description="the window's start (aware time)")]
ToQuery = Annotated[UtcDatetime, Query(alias="to", description="the window's end, excluded (aware time)")]
PeriodQuery = Annotated[
    str,
    Query(
        description="day, week (ISO, Monday first) or month, in Asia/Shanghai; at most 400 per report",
        json_schema_extra={"enum": list(rules.PERIODS)},
    ),
]
GroupQuery = Annotated[
    str,
    Query(
        description="provider, pool, region (the site's) or accelerator",
        json_schema_extra={"enum": list(rules.GROUPS)},
    ),
]


@router.get("/local-share", response_model=LocalShareRead)
def get_local_share(
    ctx: CtxDep, settings: SettingsDep, start: FromQuery, end: ToQuery, period: PeriodQuery = rules.DAY
) -> LocalShareRead:
    """Who used the region's compute: card-hours and PFLOPS·h per tenant class (local_sme, local_other,
    outside) per period, and the local share; regulator only."""
    return service.local_share(
        session=ctx.session, principal=ctx.principal, settings=settings, start=start, end=end, period=period
    )


@router.get("/utilization", response_model=UtilizationRead)
def get_utilization(
    ctx: CtxDep,
    start: FromQuery,
    end: ToQuery,
    period: PeriodQuery = rules.DAY,
    group: GroupQuery = "provider",
) -> UtilizationRead:
    """Used ÷ available card-hours per period and group; an operator sees its own provider's pools."""
    return service.utilization(
        session=ctx.session, principal=ctx.principal, start=start, end=end, period=period, group=group
    )


@router.get("/queue", response_model=QueueRead)
def get_queue(
    ctx: CtxDep, settings: SettingsDep, start: FromQuery, end: ToQuery, period: PeriodQuery = rules.DAY
) -> QueueRead:
    """Waiting times of the jobs that started in the window per tenant class and period, and the queue
    now; regulator only."""
    return service.queue(
        session=ctx.session,
        principal=ctx.principal,
        settings=settings,
        start=start,
        end=end,
        period=period,
        now=ctx.now,
    )
