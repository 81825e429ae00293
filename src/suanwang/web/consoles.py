"""What a tenant's and a provider's home pages show, fetched through the API's own functions."""

from __future__ import annotations

from typing import Any

from suanwang.db.query import PageRequest
from suanwang.errors import Forbidden
from suanwang.jobs import api as jobs_api
from suanwang.jobs.models import JobState
from suanwang.settlement import api as money_api
from suanwang.settlement import statements
from suanwang.supply import api as supply_api
from suanwang.tenants import api as tenants_api
from suanwang.vouchers import api as vouchers_api
from suanwang.web.auth import PageCtx
from suanwang.web.tables import api_ctx, as_page

RECENT = PageRequest(limit=10, offset=0, sort="-id")
MONTHS_SHOWN = 6


def recent_months(ctx: PageCtx, count: int = MONTHS_SHOWN) -> list[str]:
    month = statements.Month.of(ctx.now)
    months = [month]
    for _ in range(count - 1):
        year, number = (month.year - 1, 12) if month.month == 1 else (month.year, month.month - 1)
        month = statements.Month(year, number)
        months.append(month)
    return [str(m) for m in months]


def tenant(ctx: PageCtx) -> dict[str, Any]:
    if ctx.principal.org_id is None or not ctx.principal.is_tenant:
        raise Forbidden("web.tenants-only")
    api = api_ctx(ctx)
    org_id = ctx.principal.org_id
    settings = ctx.request.app.state.settings
    org = tenants_api.get_org(org_id, api, settings)
    accounts = money_api.org_accounts(org_id, api)
    wallet, arrears = accounts[0], accounts[1]
    jobs = as_page(jobs_api.list_jobs(api, RECENT, ctx.lang))
    grants = as_page(vouchers_api.list_grants(api, PageRequest(limit=50, offset=0, sort="-id")))
    applications = as_page(vouchers_api.list_applications(api, PageRequest(limit=10, offset=0, sort="-id")))
    month = recent_months(ctx, 1)[0]
    invoice = money_api.org_invoice(org_id, month, api, ctx.lang)
    return {
        "org": org,
        "wallet": wallet,
        "arrears": arrears,
        "jobs": jobs,
        "grants": grants,
        "applications": applications,
        "invoice": invoice,
        "months": recent_months(ctx),
        "active": sum(
            1 for j in jobs.items if j["state"] in (JobState.QUEUED, JobState.PLACED, JobState.RUNNING)
        ),
    }


def provider(ctx: PageCtx) -> dict[str, Any]:
    provider_id = ctx.principal.provider_id
    if provider_id is None:
        raise Forbidden("web.providers-only")
    api = api_ctx(ctx)
    found = supply_api.get_provider(provider_id, api)
    sites = as_page(supply_api.list_sites(api, PageRequest(limit=100, offset=0), provider_id=provider_id))
    pools = as_page(supply_api.list_pools(api, PageRequest(limit=100, offset=0), provider_id=provider_id))
    running = as_page(
        jobs_api.list_jobs(api, PageRequest(limit=20, offset=0, sort="-id"), ctx.lang, state=JobState.RUNNING)
    )
    months = recent_months(ctx)
    statement = money_api.provider_statement(provider_id, months[0], api, ctx.lang)
    return {
        "provider": found,
        "sites": sites,
        "pools": pools,
        "running": running,
        "statement": statement,
        "months": months,
        "unhealthy": [p for p in pools.items if not p["healthy"]],
    }
