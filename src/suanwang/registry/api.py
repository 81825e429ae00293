"""REST routes of the enterprise registry (企业梯度培育库): the chain's segments, enterprises and their tiers,
profiles with platform use, investment projects, monthly output. Statistics, cultivation and spreadsheet
import/export are in reports_api.py.

Who: the regulator reads and writes everything; a tenant reads only its own organisation's record;
the taxonomy is readable by every signed-in user."""

from __future__ import annotations

import enum
import re
from datetime import date
from typing import Annotated, Any

from fastapi import APIRouter, Depends, Query
from sqlalchemy import case

from suanwang.api.deps import CtxDep, PageDep
from suanwang.api.idempotency import IdemDep, created
from suanwang.api.schemas import PROBLEM_RESPONSES, PageRead, page_read
from suanwang.db.query import get_or_404, page
from suanwang.errors import Invalid
from suanwang.fields import Id
from suanwang.registry import enterprises, output, profile, projects
from suanwang.registry import taxonomy as chain
from suanwang.registry.models import Enterprise, Project, ProjectStatus, Stage, Tier
from suanwang.registry.schemas import (
    EnterpriseCreate,
    EnterprisePatch,
    EnterpriseProfile,
    EnterpriseRead,
    OutputPut,
    OutputRead,
    ProjectCreate,
    ProjectPatch,
    ProjectRead,
    SegmentCreate,
    SegmentPatch,
    SegmentRead,
    TierGrant,
    TierRevoke,
)
from suanwang.tenants.access import require_regulator
from suanwang.timeutil import shanghai_date

router = APIRouter(prefix="/registry", tags=["registry"], responses=PROBLEM_RESPONSES)

MONTH = re.compile(r"^(\d{4})-(\d{2})$")


def parse_month(value: str) -> tuple[int, int]:
    """'2024-09' -> (2024, 9)."""
    match = MONTH.match(value)
    if match is None:
        raise Invalid("registry.bad-month-text", value=value)
    year, month = int(match[1]), int(match[2])
    output.check_month(year, month)
    return year, month


# --- segments ------------------------------------------------------------------------------------


@router.get("/segments", response_model=list[SegmentRead])
def list_segments(ctx: CtxDep, include_retired: bool = False) -> list[SegmentRead]:
    """The industry chain: stages, segments and sub-segments, in the regulator's order."""
    rows = chain.list_segments(ctx.session, include_retired=include_retired)
    return [SegmentRead.model_validate(r) for r in rows]


@router.post("/segments", status_code=201, response_model=SegmentRead)
def create_segment(body: SegmentCreate, ctx: CtxDep, idem: IdemDep) -> Any:
    """Add a segment, or a sub-segment under a top-level segment of the same stage (regulator)."""
    return created(
        ctx,
        idem,
        lambda: SegmentRead.model_validate(
            chain.create_segment(ctx.session, principal=ctx.principal, data=body)
        ),
    )


@router.patch("/segments/{code}", response_model=SegmentRead)
def update_segment(code: str, body: SegmentPatch, ctx: CtxDep) -> SegmentRead:
    """Rename, reorder, move, retire (`retired: true`) or bring back a segment (regulator). Records that
    name a retired segment keep it; new records cannot name it."""
    segment = chain.update_segment(ctx.session, principal=ctx.principal, code=code, data=body, now=ctx.now)
    ctx.session.commit()
    return SegmentRead.model_validate(segment)


# --- enterprises ---------------------------------------------------------------------------------


def in_order(column: Any, members: type[enum.Enum]) -> Any:
    """Sort an enum column in its declared order (the ladder, the project's progress), not its codes'
    alphabetical one; no value sorts first."""
    return case({m: i for i, m in enumerate(members, start=1)}, value=column, else_=0)


ENTERPRISE_SORTS = {
    "id": Enterprise.id,
    "name": Enterprise.name,
    "credit_code": Enterprise.credit_code,
    "tier": in_order(Enterprise.tier, Tier),
    "employees": Enterprise.employees,
    "rd_intensity_bp": Enterprise.rd_intensity_bp,
    "founded_on": Enterprise.founded_on,
}


@router.get("/enterprises", response_model=PageRead[EnterpriseRead])
def list_enterprises(
    ctx: CtxDep,
    paging: PageDep,
    segment: Annotated[str | None, Query(description="a segment code (its sub-segments included)")] = None,
    stage: Stage | None = None,
    tier: Tier | None = None,
    untiered: Annotated[bool, Query(description="only enterprises with no tier")] = False,
    district: str | None = None,
    park: str | None = None,
    above_size: Annotated[bool | None, Query(description="规上 or not")] = None,
    q: Annotated[str | None, Query(max_length=200, description="part of a name, or a credit code")] = None,
    include_retired: bool = False,
) -> dict[str, Any]:
    """Search the registry (regulator); a tenant gets its own record only."""
    taxonomy = chain.load(ctx.session)
    stmt = enterprises.search(
        ctx.principal,
        taxonomy,
        segment=segment,
        stage=stage.value if stage else None,
        tier=tier,
        untiered=untiered,
        district=district,
        park=park,
        above_size=above_size,
        q=q,
        include_retired=include_retired,
    )
    result = page(ctx.session, stmt, paging, sortable=ENTERPRISE_SORTS)
    return page_read(result, lambda e: enterprises.read(e, taxonomy))


@router.post("/enterprises", status_code=201, response_model=EnterpriseRead)
def create_enterprise(body: EnterpriseCreate, ctx: CtxDep, idem: IdemDep) -> Any:
    """Register an enterprise (regulator). It is linked to the tenant organisation with the same credit
    code when there is one; a tier given is recorded as granted on `tier_granted_on` (default today)."""

    def create() -> EnterpriseRead:
        enterprise = enterprises.create(ctx.session, principal=ctx.principal, data=body, now=ctx.now)
        return enterprises.read(enterprise, chain.load(ctx.session))

    return created(ctx, idem, create)


@router.get("/enterprises/{enterprise_id}", response_model=EnterpriseProfile)
def get_enterprise(enterprise_id: Id, ctx: CtxDep) -> EnterpriseProfile:
    """The enterprise's profile: record, tiers with their dates, projects, the last 24 months of output,
    and its use of the platform and vouchers when it is a tenant."""
    enterprise = enterprises.get_enterprise(ctx.session, principal=ctx.principal, enterprise_id=enterprise_id)
    return profile.profile(ctx.session, enterprise)


@router.patch("/enterprises/{enterprise_id}", response_model=EnterpriseRead)
def update_enterprise(enterprise_id: Id, body: EnterprisePatch, ctx: CtxDep) -> EnterpriseRead:
    enterprise = enterprises.update(
        ctx.session, principal=ctx.principal, enterprise_id=enterprise_id, data=body, now=ctx.now
    )
    ctx.session.commit()
    return enterprises.read(enterprise, chain.load(ctx.session))


@router.post("/enterprises/{enterprise_id}/tiers", response_model=EnterpriseRead)
def grant_tier(enterprise_id: Id, body: TierGrant, ctx: CtxDep) -> EnterpriseRead:
    """Record a tier granted on a date (regulator); granting it again on the same date changes nothing.
    The current tier is the latest granted that is not revoked."""
    enterprise = enterprises.grant_tier(
        ctx.session, principal=ctx.principal, enterprise_id=enterprise_id, data=body, now=ctx.now
    )
    ctx.session.commit()
    return enterprises.read(enterprise, chain.load(ctx.session))


@router.post("/enterprises/{enterprise_id}/tiers/{tier}/revoke", response_model=EnterpriseRead)
def revoke_tier(enterprise_id: Id, tier: Tier, body: TierRevoke, ctx: CtxDep) -> EnterpriseRead:
    enterprise = enterprises.revoke_tier(
        ctx.session,
        principal=ctx.principal,
        enterprise_id=enterprise_id,
        tier=tier,
        revoked_on=body.revoked_on,
    )
    ctx.session.commit()
    return enterprises.read(enterprise, chain.load(ctx.session))


@router.put("/enterprises/{enterprise_id}/output/{month}", response_model=OutputRead)
def put_output(enterprise_id: Id, month: str, body: OutputPut, ctx: CtxDep) -> OutputRead:
    """Record or correct one month's output value and revenue (regulator); `month` is YYYY-MM."""
    require_regulator(ctx.principal)
    enterprise = enterprises.get_enterprise(ctx.session, principal=ctx.principal, enterprise_id=enterprise_id)
    year, number = parse_month(month)
    record = output.put(ctx.session, enterprise, year, number, body)
    ctx.session.commit()
    return OutputRead.model_validate(record)


# --- projects ------------------------------------------------------------------------------------

PROJECT_SORTS = {
    "id": Project.id,
    "name": Project.name,
    "signed_on": Project.signed_on,
    "investment_fen": Project.investment_fen,
    "status": in_order(Project.status, ProjectStatus),
}


class ProjectFilters:
    """The filters the list and the summary share."""

    def __init__(
        self,
        status: ProjectStatus | None = None,
        segment: Annotated[
            str | None, Query(description="a segment code (its sub-segments included)")
        ] = None,
        enterprise_id: Annotated[int | None, Query(ge=1)] = None,
        signed_from: date | None = None,
        signed_to: Annotated[date | None, Query(description="inclusive")] = None,
        foreign_funded: bool | None = None,
        chain_leader: str | None = None,
        include_retired: bool = False,
    ) -> None:
        self.values = {
            "status": status,
            "segment": segment,
            "enterprise_id": enterprise_id,
            "signed_from": signed_from,
            "signed_to": signed_to,
            "foreign_funded": foreign_funded,
            "chain_leader": chain_leader,
            "include_retired": include_retired,
        }

    def statement(self, taxonomy: chain.Taxonomy) -> Any:
        values = dict(self.values)
        code = values.pop("segment")
        if code is not None and code not in taxonomy.nodes:  # a retired segment still finds its projects
            chain.check_codes(taxonomy, [code], field="segment")
        return projects.search(segment=taxonomy.within(code) if code else None, **values)


ProjectFiltersDep = Annotated[ProjectFilters, Depends()]


@router.get("/projects", response_model=PageRead[ProjectRead])
def list_projects(ctx: CtxDep, paging: PageDep, filters: ProjectFiltersDep) -> dict[str, Any]:
    """Investment projects (regulator)."""
    require_regulator(ctx.principal)
    stmt = filters.statement(chain.load(ctx.session))
    return page_read(page(ctx.session, stmt, paging, sortable=PROJECT_SORTS), ProjectRead.model_validate)


@router.get("/projects/summary")
def project_summary(ctx: CtxDep, filters: ProjectFiltersDep) -> dict[str, Any]:
    """Count and total investment of the projects the filters select, by status, segment and stage, with
    the foreign-funded ones and their US-dollar amount (regulator)."""
    require_regulator(ctx.principal)
    taxonomy = chain.load(ctx.session)
    return projects.summary(ctx.session, filters.statement(taxonomy), taxonomy)


@router.post("/projects", status_code=201, response_model=ProjectRead)
def create_project(body: ProjectCreate, ctx: CtxDep, idem: IdemDep) -> Any:
    today = shanghai_date(ctx.now)
    return created(
        ctx,
        idem,
        lambda: ProjectRead.model_validate(
            projects.create(ctx.session, principal=ctx.principal, data=body, today=today)
        ),
    )


@router.get("/projects/{project_id}", response_model=ProjectRead)
def get_project(project_id: Id, ctx: CtxDep) -> ProjectRead:
    require_regulator(ctx.principal)
    return ProjectRead.model_validate(get_or_404(ctx.session, Project, project_id, what="project"))


@router.patch("/projects/{project_id}", response_model=ProjectRead)
def update_project(project_id: Id, body: ProjectPatch, ctx: CtxDep) -> ProjectRead:
    """Edit a project; its status only moves forward (signed → under construction → in production), and
    a step's date defaults to today."""
    project = projects.update(
        ctx.session,
        principal=ctx.principal,
        project_id=project_id,
        data=body,
        now=ctx.now,
        today=shanghai_date(ctx.now),
    )
    ctx.session.commit()
    return ProjectRead.model_validate(project)
