"""The list pages: each fetches one page through the API's own list function, so a page shows exactly
what the same user's token would get from the REST API (scoping, filters, sorting and errors)."""

from __future__ import annotations

from collections.abc import Callable
from enum import Enum
from typing import Any, TypeVar

from pydantic import BaseModel

from suanwang.api.deps import Ctx
from suanwang.db.query import Page, PageRequest
from suanwang.errors import Invalid
from suanwang.jobs import api as jobs_api
from suanwang.jobs.models import JobState
from suanwang.metering import api as metering_api
from suanwang.registry import api as registry_api
from suanwang.registry.models import ProjectStatus, Stage, Tier
from suanwang.supply import api as supply_api
from suanwang.supply.models import Phase
from suanwang.tenants import api as tenants_api
from suanwang.tenants.models import OrgKind
from suanwang.vouchers import api as vouchers_api
from suanwang.web.auth import PageCtx
from suanwang.web.lists import Column, Filter, ListSpec, Row

E = TypeVar("E", bound=Enum)


def api_ctx(ctx: PageCtx) -> Ctx:
    return Ctx(session=ctx.session, principal=ctx.principal, now=ctx.now)


def as_page(result: dict[str, Any]) -> Page[Row]:
    items = [i.model_dump() if isinstance(i, BaseModel) else dict(i) for i in result["items"]]
    return Page(items=items, total=result["total"], limit=result["limit"], offset=result["offset"])


def enum_value(kind: type[E], value: str | None, field: str) -> E | None:
    """A filter's value as the enum the API takes; a wrong one is the API's clear 422, in words."""
    if value is None:
        return None
    try:
        return kind(value)
    except ValueError:
        raise Invalid(
            "web.bad-filter", field=field, value=value, allowed=", ".join(m.value for m in kind)
        ) from None


def int_value(value: str | None, field: str) -> int | None:
    if value is None:
        return None
    if not value.isdigit():
        raise Invalid("web.bad-filter", field=field, value=value, allowed="1, 2, 3, …")
    return int(value)


def options(kind: type[Enum], prefix: str) -> tuple[tuple[str, str], ...]:
    return tuple((m.value, prefix + m.value) for m in kind)


def link(template: str, key: str = "id") -> Callable[[Row], str | None]:
    return lambda row: template.format(row[key]) if row.get(key) is not None else None


# --- jobs -------------------------------------------------------------------------------------------


def _jobs(ctx: PageCtx, f: dict[str, str], paging: PageRequest) -> Page[Row]:
    result = jobs_api.list_jobs(
        api_ctx(ctx),
        paging,
        ctx.lang,
        state=enum_value(JobState, f.get("state"), "state"),
        org_id=int_value(f.get("org_id"), "org_id"),
        pool_id=int_value(f.get("pool_id"), "pool_id"),
    )
    return as_page(result)


JOBS = ListSpec(
    path="/jobs",
    title="web.jobs.title",
    columns=(
        Column("id", "web.col.id", "num", sort="id", href=link("/jobs/{}")),
        Column("name", "web.col.name"),
        Column("state", "web.col.state", "state", sort="state", states="web.job-state."),
        Column("reason", "web.col.reason"),
        Column("cards", "web.col.cards", "num", sort="cards"),
        Column("pool_id", "web.col.pool", "num", href=link("/pools?id={}", "pool_id")),
        Column("org_id", "web.col.org", "num"),
        Column("submitted_at", "web.col.submitted", "when", sort="submitted_at"),
        Column("started_at", "web.col.started", "when"),
        Column("ended_at", "web.col.ended", "when"),
        Column("charged_fen", "web.col.charged", "money"),
    ),
    fetch=_jobs,
    filters=(
        Filter("state", "web.col.state", options(JobState, "web.job-state.")),
        Filter("pool_id", "web.col.pool"),
        Filter("org_id", "web.col.org"),
    ),
    empty="web.empty.jobs",
)

# --- pools ------------------------------------------------------------------------------------------


def _pools(ctx: PageCtx, f: dict[str, str], paging: PageRequest) -> Page[Row]:
    result = supply_api.list_pools(
        api_ctx(ctx),
        paging,
        provider_id=int_value(f.get("provider_id"), "provider_id"),
        site_id=int_value(f.get("site_id"), "site_id"),
        accelerator=f.get("accelerator"),
        region=f.get("region"),
        phase=enum_value(Phase, f.get("phase"), "phase"),
        domestic=None if f.get("domestic") is None else f["domestic"] == "true",
    )
    return as_page(result)


POOLS = ListSpec(
    path="/pools",
    title="web.pools.title",
    columns=(
        Column("id", "web.col.id", "num", sort="id"),
        Column("code", "web.col.code", sort="code"),
        Column("name", "web.col.name"),
        Column("provider_id", "web.col.provider", "num", href=link("/pools?provider_id={}", "provider_id")),
        Column("region", "web.col.region"),
        Column("accelerator", "web.col.accelerator"),
        Column("cards", "web.col.cards", "num"),
        Column("pflops", "web.col.pflops", "num"),
        Column("phase", "web.col.phase", "state", states="phase."),
        Column("healthy", "web.col.healthy"),
        Column("health_message", "web.col.health"),
    ),
    fetch=_pools,
    filters=(
        Filter("provider_id", "web.col.provider"),
        Filter("region", "web.col.region"),
        Filter("accelerator", "web.col.accelerator"),
        Filter("phase", "web.col.phase", options(Phase, "phase.")),
        Filter(
            "domestic", "web.col.origin", (("true", "web.region.domestic"), ("false", "web.region.imported"))
        ),
    ),
    empty="web.empty.pools",
)

# --- organisations ----------------------------------------------------------------------------------


def _orgs(ctx: PageCtx, f: dict[str, str], paging: PageRequest) -> Page[Row]:
    sme = f.get("is_sme")
    result = tenants_api.list_orgs(
        api_ctx(ctx),
        paging,
        ctx.request.app.state.settings,
        kind=enum_value(OrgKind, f.get("kind"), "kind"),
        is_sme=None if sme is None else sme == "yes",
        q=f.get("q"),
    )
    return as_page(result)


ORGS = ListSpec(
    path="/orgs",
    title="web.orgs.title",
    columns=(
        Column("id", "web.col.id", "num", sort="id"),
        Column("name", "web.col.name", sort="name"),
        Column("credit_code", "web.col.credit-code"),
        Column("kind", "web.col.kind", "state", states="web.org-kind."),
        Column("locality_name", "web.col.locality"),
        Column("is_local", "web.col.local"),
        Column("is_sme", "web.col.sme"),
    ),
    fetch=_orgs,
    filters=(
        Filter("q", "web.col.search"),
        Filter("kind", "web.col.kind", options(OrgKind, "web.org-kind.")),
        Filter("is_sme", "web.col.sme", (("yes", "web.yes"), ("no", "web.no"))),
    ),
    empty="web.empty.orgs",
)

# --- usage ------------------------------------------------------------------------------------------


def _usage(ctx: PageCtx, f: dict[str, str], paging: PageRequest) -> Page[Row]:
    result = metering_api.list_usage(
        api_ctx(ctx),
        paging,
        org_id=int_value(f.get("org_id"), "org_id"),
        pool_id=int_value(f.get("pool_id"), "pool_id"),
        job_id=int_value(f.get("job_id"), "job_id"),
        ended_from=None,
        ended_to=None,
    )
    return as_page(result)


USAGE = ListSpec(
    path="/usage",
    title="web.usage.title",
    columns=(
        Column("id", "web.col.id", "num", sort="id"),
        Column("job_id", "web.col.job", "num", href=link("/jobs/{}", "job_id")),
        Column("org_id", "web.col.org", "num"),
        Column("pool_id", "web.col.pool", "num"),
        Column("cards", "web.col.cards", "num"),
        Column("started_at", "web.col.started", "when"),
        Column("ended_at", "web.col.ended", "when", sort="ended_at"),
        Column("card_seconds", "web.col.card-seconds", "num"),
        Column("source", "web.col.source"),
    ),
    fetch=_usage,
    filters=(
        Filter("org_id", "web.col.org"),
        Filter("pool_id", "web.col.pool"),
        Filter("job_id", "web.col.job"),
    ),
    empty="web.empty.usage",
)

# --- vouchers ---------------------------------------------------------------------------------------


def _grants(ctx: PageCtx, f: dict[str, str], paging: PageRequest) -> Page[Row]:
    result = vouchers_api.list_grants(
        api_ctx(ctx),
        paging,
        programme_id=int_value(f.get("programme_id"), "programme_id"),
        org_id=int_value(f.get("org_id"), "org_id"),
    )
    return as_page(result)


GRANTS = ListSpec(
    path="/vouchers/grants",
    title="web.grants.title",
    columns=(
        Column("id", "web.col.id", "num", sort="id"),
        Column("programme_id", "web.col.programme", "num"),
        Column("org_id", "web.col.org", "num"),
        Column("status", "web.col.status", "state", states="web.grant-status."),
        Column("amount_fen", "web.col.granted", "money"),
        Column("redeemed_fen", "web.col.redeemed", "money"),
        Column("available_fen", "web.col.available", "money"),
        Column("valid_until", "web.col.valid-until", "when", sort="valid_until"),
    ),
    fetch=_grants,
    filters=(Filter("programme_id", "web.col.programme"), Filter("org_id", "web.col.org")),
    empty="web.empty.grants",
)


def _applications(ctx: PageCtx, f: dict[str, str], paging: PageRequest) -> Page[Row]:
    status = f.get("status")
    if status is not None and status not in ("submitted", "approved", "rejected"):
        raise Invalid("web.bad-filter", field="status", value=status, allowed="submitted, approved, rejected")
    result = vouchers_api.list_applications(
        api_ctx(ctx), paging, programme_id=int_value(f.get("programme_id"), "programme_id"), status=status
    )
    return as_page(result)


APPLICATIONS = ListSpec(
    path="/vouchers/applications",
    title="web.applications.title",
    columns=(
        Column("id", "web.col.id", "num", sort="id"),
        Column("programme_id", "web.col.programme", "num"),
        Column("org_id", "web.col.org", "num"),
        Column("status", "web.col.status", "state", states="web.application-status."),
        Column("requested_fen", "web.col.requested", "money"),
        Column("approved_fen", "web.col.approved", "money"),
        Column("purpose", "web.col.purpose"),
        Column("submitted_at", "web.col.submitted", "when", sort="submitted_at"),
        Column("review_reason", "web.col.review-reason"),
    ),
    fetch=_applications,
    filters=(
        Filter(
            "status",
            "web.col.status",
            tuple((s, "web.application-status." + s) for s in ("submitted", "approved", "rejected")),
        ),
        Filter("programme_id", "web.col.programme"),
    ),
    empty="web.empty.applications",
)

# --- registry ---------------------------------------------------------------------------------------


def _enterprises(ctx: PageCtx, f: dict[str, str], paging: PageRequest) -> Page[Row]:
    above = f.get("above_size")
    result = registry_api.list_enterprises(
        api_ctx(ctx),
        paging,
        segment=f.get("segment"),
        stage=enum_value(Stage, f.get("stage"), "stage"),
        tier=enum_value(Tier, f.get("tier"), "tier"),
        district=f.get("district"),
        above_size=None if above is None else above == "yes",
        q=f.get("q"),
    )
    page = as_page(result)
    for row in page.items:
        row["segment"] = (row.get("segments") or [None])[0]
    return page


ENTERPRISES = ListSpec(
    path="/registry/enterprises",
    title="web.enterprises.title",
    columns=(
        Column("id", "web.col.id", "num", sort="id"),
        Column("name", "web.col.name", sort="name"),
        Column("credit_code", "web.col.credit-code"),
        Column("stage", "web.col.stage", "state", states="cli.registry-stage."),
        Column("segment", "web.col.segment"),
        Column("tier", "web.col.tier", "state", states="web.tier."),
        Column("district", "web.col.district"),
        Column("above_size", "web.col.above-size"),
        Column("employees", "web.col.employees", "num"),
    ),
    fetch=_enterprises,
    filters=(
        Filter("q", "web.col.search"),
        Filter("stage", "web.col.stage", options(Stage, "cli.registry-stage.")),
        Filter("segment", "web.col.segment"),
        Filter("tier", "web.col.tier", options(Tier, "web.tier.")),
        Filter("above_size", "web.col.above-size", (("yes", "web.yes"), ("no", "web.no"))),
    ),
    empty="web.empty.enterprises",
)


def _projects(ctx: PageCtx, f: dict[str, str], paging: PageRequest) -> Page[Row]:
    foreign = f.get("foreign_funded")
    filters = registry_api.ProjectFilters(
        status=enum_value(ProjectStatus, f.get("status"), "status"),
        segment=f.get("segment"),
        foreign_funded=None if foreign is None else foreign == "yes",
    )
    return as_page(registry_api.list_projects(api_ctx(ctx), paging, filters))


PROJECTS = ListSpec(
    path="/registry/projects",
    title="web.projects.title",
    columns=(
        Column("id", "web.col.id", "num", sort="id"),
        Column("name", "web.col.name", sort="name"),
        Column("segment", "web.col.segment"),
        Column("status", "web.col.status", "state", states="cli.registry-status."),
        Column("investment_fen", "web.col.investment", "money", sort="investment_fen"),
        Column("foreign_funded", "web.col.foreign"),
        Column("signed_on", "web.col.signed", sort="signed_on"),
        Column("chain_leader", "web.col.chain-leader"),
    ),
    fetch=_projects,
    filters=(
        Filter("status", "web.col.status", options(ProjectStatus, "cli.registry-status.")),
        Filter("segment", "web.col.segment"),
        Filter("foreign_funded", "web.col.foreign", (("yes", "web.yes"), ("no", "web.no"))),
    ),
    empty="web.empty.projects",
)

ALL = (JOBS, POOLS, ORGS, USAGE, GRANTS, APPLICATIONS, ENTERPRISES, PROJECTS)
