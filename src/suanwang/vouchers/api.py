"""REST routes of compute vouchers (算力券): presets and programmes (regulator), applications (tenants),
reviews (regulator), grants and their balances, redemptions, clawbacks, quarterly claims, flags, audit."""

from __future__ import annotations

from typing import Annotated, Any

from fastapi import APIRouter, Query
from sqlalchemy import select

from suanwang.api.deps import CtxDep, PageDep
from suanwang.api.idempotency import IdemDep, created
from suanwang.api.schemas import PROBLEM_RESPONSES, PageRead, page_read
from suanwang.db.query import page
from suanwang.fields import Id
from suanwang.tenants.access import require_regulator
from suanwang.vouchers import grants, programmes, redemption
from suanwang.vouchers.models import (
    VoucherApplication,
    VoucherAudit,
    VoucherFlag,
    VoucherGrant,
    VoucherProgramme,
    VoucherRedemption,
)
from suanwang.vouchers.schemas import (
    ApplicationCreate,
    ApplicationRead,
    AuditRead,
    BudgetRead,
    ClaimsSettled,
    Clawback,
    ExpiredGrants,
    FlagCreate,
    FlagLift,
    FlagRead,
    GrantRead,
    PresetRead,
    ProgrammeCreate,
    ProgrammeRead,
    RedemptionRead,
    Review,
)

router = APIRouter(prefix="/vouchers", tags=["vouchers"], responses=PROBLEM_RESPONSES)


# --- presets and programmes ----------------------------------------------------------------------


def _preset_read(name: str, values: dict[str, Any]) -> PresetRead:
    return PresetRead(
        name=name,
        values={k: v for k, v in values.items() if k not in ("required", "notes")},
        required=list(values.get("required", [])),
        notes=values.get("notes"),
    )


@router.get("/presets", response_model=list[PresetRead])
def list_presets(ctx: CtxDep) -> list[PresetRead]:
    """Real programmes' parameters shipped as data, each with its source and what it leaves open."""
    return [_preset_read(name, values) for name, values in programmes.presets().items()]


@router.get("/presets/{name}", response_model=PresetRead)
def get_preset(name: str, ctx: CtxDep) -> PresetRead:
    return _preset_read(name, programmes.preset(name))


@router.post("/programmes", status_code=201, response_model=ProgrammeRead)
def create_programme(body: ProgrammeCreate, ctx: CtxDep, idem: IdemDep) -> Any:
    """Create a programme (regulator), from a preset or from scratch; its budget is funded in the ledger."""
    return created(
        ctx,
        idem,
        lambda: ProgrammeRead.model_validate(
            programmes.create_programme(ctx.session, principal=ctx.principal, data=body, now=ctx.now)
        ),
    )


@router.get("/programmes", response_model=PageRead[ProgrammeRead])
def list_programmes(ctx: CtxDep, paging: PageDep) -> dict[str, Any]:
    """Every programme (all signed-in users: tenants need to know what they can apply for)."""
    sortable = {
        "id": VoucherProgramme.id,
        "code": VoucherProgramme.code,
        "starts_on": VoucherProgramme.starts_on,
    }
    return page_read(
        page(ctx.session, select(VoucherProgramme), paging, sortable=sortable), ProgrammeRead.model_validate
    )


@router.get("/programmes/{programme_id}", response_model=ProgrammeRead)
def get_programme(programme_id: Id, ctx: CtxDep) -> ProgrammeRead:
    return ProgrammeRead.model_validate(programmes.get_programme(ctx.session, programme_id))


@router.get("/programmes/{programme_id}/budget", response_model=BudgetRead)
def programme_budget(programme_id: Id, ctx: CtxDep) -> BudgetRead:
    """Where the programme's money stands (regulator)."""
    require_regulator(ctx.principal)
    result = programmes.budget(ctx.session, programmes.get_programme(ctx.session, programme_id))
    ctx.session.commit()
    return result


@router.post("/programmes/{programme_id}/claims/{quarter}/settle", response_model=ClaimsSettled)
def settle_claims(programme_id: Id, quarter: str, ctx: CtxDep) -> ClaimsSettled:
    """Settle a quarterly programme's claims of an ended quarter, e.g. 2026Q3 (regulator). Repeating it
    settles nothing more."""
    result = redemption.settle_claims(
        ctx.session, principal=ctx.principal, programme_id=programme_id, quarter=quarter, now=ctx.now
    )
    ctx.session.commit()
    return result


# --- applications and reviews --------------------------------------------------------------------


def _application_read(ctx: CtxDep, application: VoucherApplication) -> ApplicationRead:
    read = ApplicationRead.model_validate(application)
    read.grant_id = grants.grant_of(ctx.session, application.id)
    return read


@router.post("/applications", status_code=201, response_model=ApplicationRead)
def apply(body: ApplicationCreate, ctx: CtxDep, idem: IdemDep) -> Any:
    """Apply for a grant (the tenant's admin, or the regulator on its behalf)."""
    return created(
        ctx,
        idem,
        lambda: _application_read(
            ctx, grants.apply(ctx.session, principal=ctx.principal, data=body, now=ctx.now)
        ),
    )


@router.get("/applications", response_model=PageRead[ApplicationRead])
def list_applications(
    ctx: CtxDep,
    paging: PageDep,
    programme_id: Id | None = None,
    status: Annotated[str | None, Query(pattern="^(submitted|approved|rejected)$")] = None,
) -> dict[str, Any]:
    """Applications you may see (tenants: their organisation's; the regulator: all)."""
    stmt = grants.visible_applications(ctx.principal)
    if programme_id is not None:
        stmt = stmt.where(VoucherApplication.programme_id == programme_id)
    if status is not None:
        stmt = stmt.where(VoucherApplication.status == status)
    sortable = {"id": VoucherApplication.id, "submitted_at": VoucherApplication.submitted_at}
    return page_read(page(ctx.session, stmt, paging, sortable=sortable), lambda a: _application_read(ctx, a))


@router.get("/applications/{application_id}", response_model=ApplicationRead)
def get_application(application_id: Id, ctx: CtxDep) -> ApplicationRead:
    found = grants.get_application(ctx.session, principal=ctx.principal, application_id=application_id)
    return _application_read(ctx, found)


@router.post("/applications/{application_id}/review", response_model=ApplicationRead)
def review(application_id: Id, body: Review, ctx: CtxDep) -> ApplicationRead:
    """Approve with an amount (a grant funded from the budget) or reject with a reason (regulator)."""
    application = grants.review(
        ctx.session, principal=ctx.principal, application_id=application_id, data=body, now=ctx.now
    )
    read = _application_read(ctx, application)
    ctx.session.commit()
    return read


# --- grants, redemptions, clawbacks --------------------------------------------------------------


@router.get("/grants", response_model=PageRead[GrantRead])
def list_grants(
    ctx: CtxDep, paging: PageDep, programme_id: Id | None = None, org_id: Id | None = None
) -> dict[str, Any]:
    """Grants you may see, with their balances (granted, redeemed, claimed, available)."""
    stmt = grants.visible_grants(ctx.principal)
    if programme_id is not None:
        stmt = stmt.where(VoucherGrant.programme_id == programme_id)
    if org_id is not None:
        stmt = stmt.where(VoucherGrant.org_id == org_id)
    sortable = {"id": VoucherGrant.id, "valid_until": VoucherGrant.valid_until}
    return page_read(
        page(ctx.session, stmt, paging, sortable=sortable), lambda g: grants.read_grant(ctx.session, g)
    )


@router.get("/grants/{grant_id}", response_model=GrantRead)
def get_grant(grant_id: Id, ctx: CtxDep) -> GrantRead:
    return grants.read_grant(
        ctx.session, grants.get_grant(ctx.session, principal=ctx.principal, grant_id=grant_id)
    )


@router.post("/grants/expire", response_model=ExpiredGrants)
def expire(ctx: CtxDep) -> ExpiredGrants:
    """Expire every grant past its validity now (regulator; the controller also does it each cycle)."""
    require_regulator(ctx.principal)
    count, returned = grants.expire_grants(ctx.session, now=ctx.now, actor=ctx.principal)
    ctx.session.commit()
    return ExpiredGrants(grants=count, returned_fen=returned)


@router.get("/redemptions", response_model=PageRead[RedemptionRead])
def list_redemptions(
    ctx: CtxDep,
    paging: PageDep,
    programme_id: Id | None = None,
    org_id: Id | None = None,
    job_id: Id | None = None,
) -> dict[str, Any]:
    """Every voucher decision on a charge, with the reasons for what was not subsidised."""
    stmt = grants.visible(ctx.principal, VoucherRedemption)
    for column, value in (
        (VoucherRedemption.programme_id, programme_id),
        (VoucherRedemption.org_id, org_id),
        (VoucherRedemption.job_id, job_id),
    ):
        if value is not None:
            stmt = stmt.where(column == value)
    sortable = {"id": VoucherRedemption.id, "at": VoucherRedemption.at}
    return page_read(page(ctx.session, stmt, paging, sortable=sortable), RedemptionRead.model_validate)


@router.post("/redemptions/{redemption_id}/clawbacks", response_model=RedemptionRead)
def clawback(redemption_id: Id, body: Clawback, ctx: CtxDep, idem: IdemDep) -> Any:
    """Take a subsidy back with a reason (regulator): the tenant repays it to the programme's budget."""
    return created(
        ctx,
        idem,
        lambda: RedemptionRead.model_validate(
            redemption.clawback(
                ctx.session,
                principal=ctx.principal,
                redemption_id=redemption_id,
                amount_fen=body.amount_fen,
                reason=body.reason,
                now=ctx.now,
            )
        ),
    )


# --- flags and audit -----------------------------------------------------------------------------


@router.post("/flags", status_code=201, response_model=FlagRead)
def add_flag(body: FlagCreate, ctx: CtxDep, idem: IdemDep) -> Any:
    """Suspend an organisation's redemptions, or record a dated credit default (regulator)."""
    return created(
        ctx,
        idem,
        lambda: FlagRead.model_validate(
            grants.add_flag(ctx.session, principal=ctx.principal, data=body, now=ctx.now)
        ),
    )


@router.get("/flags", response_model=list[FlagRead])
def list_flags(ctx: CtxDep, org_id: Id | None = None, include_lifted: bool = False) -> list[FlagRead]:
    require_regulator(ctx.principal)
    stmt = select(VoucherFlag).order_by(VoucherFlag.id)
    if org_id is not None:
        stmt = stmt.where(VoucherFlag.org_id == org_id)
    if not include_lifted:
        stmt = stmt.where(VoucherFlag.lifted_at.is_(None))
    return [FlagRead.model_validate(f) for f in ctx.session.scalars(stmt)]


@router.post("/flags/{flag_id}/lift", response_model=FlagRead)
def lift_flag(flag_id: Id, body: FlagLift, ctx: CtxDep) -> FlagRead:
    flag = grants.lift_flag(
        ctx.session, principal=ctx.principal, flag_id=flag_id, reason=body.reason, now=ctx.now
    )
    read = FlagRead.model_validate(flag)
    ctx.session.commit()
    return read


@router.get("/audit", response_model=PageRead[AuditRead])
def audit_trail(
    ctx: CtxDep,
    paging: PageDep,
    programme_id: Id | None = None,
    org_id: Id | None = None,
    action: Annotated[str | None, Query(max_length=40)] = None,
) -> dict[str, Any]:
    """Every voucher decision: who, when, what, why (regulator)."""
    require_regulator(ctx.principal)
    stmt = select(VoucherAudit)
    if programme_id is not None:
        stmt = stmt.where(VoucherAudit.programme_id == programme_id)
    if org_id is not None:
        stmt = stmt.where(VoucherAudit.org_id == org_id)
    if action is not None:
        stmt = stmt.where(VoucherAudit.action == action)
    sortable = {"id": VoucherAudit.id, "at": VoucherAudit.at}
    return page_read(page(ctx.session, stmt, paging, sortable=sortable), AuditRead.model_validate)
