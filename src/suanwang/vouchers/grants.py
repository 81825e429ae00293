"""Applications, reviews, grants, expiry and the regulator's flags: the voucher lifecycle up to redemption.

A tenant applies (amount, purpose, attachments' metadata); the regulator approves with an amount or
rejects with a reason; an approval makes a grant funded from the programme's budget account in the
same transaction. A grant belongs to one organisation (non-transferable) and is valid for the
programme's validity; at expiry what is left goes back to the budget.
"""

from __future__ import annotations

from datetime import datetime, time, timedelta
from typing import TypeVar

from sqlalchemy import Select, select
from sqlalchemy.orm import Session

from suanwang.db.query import get_or_404
from suanwang.errors import Conflict, Forbidden, Invalid, NotFound
from suanwang.ledger import store as ledger
from suanwang.ledger.models import LedgerAccount
from suanwang.ledger.rules import TransferResult, TransferSpec
from suanwang.registry.models import Enterprise
from suanwang.settlement import chart
from suanwang.tenants.access import Principal, require_regulator
from suanwang.tenants.models import Organisation, Role
from suanwang.timeutil import SHANGHAI, shanghai_date
from suanwang.units import format_fen
from suanwang.vouchers import accounts, audit
from suanwang.vouchers.models import (
    ApplicationStatus,
    FlagKind,
    GrantStatus,
    VoucherApplication,
    VoucherFlag,
    VoucherGrant,
    VoucherProgramme,
    VoucherRedemption,
)
from suanwang.vouchers.programmes import get_programme, open_on, to_rules
from suanwang.vouchers.rules import Tenant, tenant_refusal, year_cap_for
from suanwang.vouchers.schemas import ApplicationCreate, FlagCreate, GrantRead, Review

Owned = TypeVar("Owned", VoucherApplication, VoucherGrant, VoucherRedemption)


# --- what the rules know of a tenant ---------------------------------------------------------------


def tenant_facts(session: Session, org_id: int) -> Tenant:
    """The organisation as the voucher rules see it: registry segments and tier, flags, affiliation."""
    org = session.get_one(Organisation, org_id)
    enterprise = session.scalar(select(Enterprise).where(Enterprise.org_id == org_id))
    flags = session.scalars(
        select(VoucherFlag).where(VoucherFlag.org_id == org_id, VoucherFlag.lifted_at.is_(None))
    ).all()
    defaults = [f.effective_on for f in flags if f.kind is FlagKind.CREDIT_DEFAULT]
    return Tenant(
        org_id=org.id,
        kind=org.kind.value,
        locality_code=org.locality_code,
        is_sme=org.is_sme,
        segments=frozenset(enterprise.segments) if enterprise else frozenset(),
        registry_tier=enterprise.tier.value if enterprise and enterprise.tier else None,
        founded_on=enterprise.founded_on if enterprise else None,
        affiliation_group=org.affiliation_group,
        last_default_on=max(defaults, default=None),
        flagged=any(f.kind is FlagKind.SUSPENDED for f in flags),
    )


# --- applications --------------------------------------------------------------------------------


def apply(
    session: Session, *, principal: Principal, data: ApplicationCreate, now: datetime
) -> VoucherApplication:
    """A tenant's application (its admin, or the regulator on its behalf); refused when the tenant is not
    eligible, below the minimum claim, above its cap, or already holds an open application or grant."""
    org_id = _applicant(principal, data.org_id)
    programme = get_programme(session, data.programme_id)
    rules = to_rules(programme)
    today = shanghai_date(now)
    if not open_on(programme, today):
        raise Invalid(
            "voucher.programme-not-open",
            code=programme.code,
            start=programme.starts_on,
            end=programme.ends_on,
        )
    facts = tenant_facts(session, org_id)
    if facts.flagged:
        raise Forbidden("voucher.tenant-suspended")
    why = tenant_refusal(rules, facts, today)
    if why is not None:
        raise Invalid(f"voucher.tenant-ineligible.{why}", code=programme.code)
    if data.requested_fen < programme.min_claim_fen:
        raise Invalid("voucher.below-min-claim", minimum=format_fen(programme.min_claim_fen))
    cap = year_cap_for(rules, facts, today)
    if cap is not None and data.requested_fen > cap:
        raise Invalid("voucher.above-cap", cap=format_fen(cap))
    _no_open_application_or_grant(session, programme.id, org_id, now)
    application = VoucherApplication(
        programme_id=programme.id,
        org_id=org_id,
        requested_fen=data.requested_fen,
        purpose=data.purpose,
        attachments=[a.model_dump(mode="json") for a in data.attachments],
        status=ApplicationStatus.SUBMITTED,
        submitted_by=principal.user_id,
        submitted_at=now,
    )
    session.add(application)
    session.flush()
    audit.record(
        session,
        now=now,
        actor=principal,
        action="application.submitted",
        programme_id=programme.id,
        org_id=org_id,
        application_id=application.id,
        amount_fen=data.requested_fen,
        reason=data.purpose,
    )
    return application


def _applicant(principal: Principal, org_id: int | None) -> int:
    if principal.is_regulator:
        if org_id is None:
            raise Invalid("voucher.org-required")
        return org_id
    if principal.role is not Role.TENANT_ADMIN or principal.org_id is None:
        raise Forbidden("access.role-required", roles="tenant_admin, regulator", role=principal.role.value)
    if org_id is not None and org_id != principal.org_id:
        raise Forbidden("money.not-your-org")
    return principal.org_id


def _no_open_application_or_grant(session: Session, programme_id: int, org_id: int, now: datetime) -> None:
    pending = session.scalar(
        select(VoucherApplication.id).where(
            VoucherApplication.programme_id == programme_id,
            VoucherApplication.org_id == org_id,
            VoucherApplication.status == ApplicationStatus.SUBMITTED,
        )
    )
    if pending is not None:
        raise Conflict("voucher.application-open", id=pending)
    _no_valid_grant(session, programme_id, org_id, now)


def _no_valid_grant(session: Session, programme_id: int, org_id: int, now: datetime) -> None:
    """An organisation holds at most one valid grant per programme."""
    active = session.scalar(
        select(VoucherGrant.id).where(
            VoucherGrant.programme_id == programme_id,
            VoucherGrant.org_id == org_id,
            VoucherGrant.status == GrantStatus.ACTIVE,
            VoucherGrant.valid_until > now,
        )
    )
    if active is not None:
        raise Conflict("voucher.grant-active", id=active)


def visible(principal: Principal, model: type[Owned]) -> Select[tuple[Owned]]:
    """Rows of an organisation's voucher objects the caller may see: the regulator all, a tenant its own
    organisation's, anyone else none."""
    stmt = select(model)
    if principal.is_regulator:
        return stmt
    if principal.is_tenant and principal.org_id is not None:
        return stmt.where(model.org_id == principal.org_id)
    return stmt.where(model.id.is_(None))


def visible_applications(principal: Principal) -> Select[tuple[VoucherApplication]]:
    return visible(principal, VoucherApplication)


def get_application(session: Session, *, principal: Principal, application_id: int) -> VoucherApplication:
    found = session.scalar(visible_applications(principal).where(VoucherApplication.id == application_id))
    if found is None:
        raise NotFound("not-found", what="voucher application", id=application_id)
    return found


def grant_of(session: Session, application_id: int) -> int | None:
    return session.scalar(select(VoucherGrant.id).where(VoucherGrant.application_id == application_id))


# --- review and grant ----------------------------------------------------------------------------


def review(
    session: Session, *, principal: Principal, application_id: int, data: Review, now: datetime
) -> VoucherApplication:
    """The regulator's decision: approve with an amount (a grant, funded from the budget) or reject."""
    require_regulator(principal)
    application = get_or_404(session, VoucherApplication, application_id, what="voucher application")
    if application.status is not ApplicationStatus.SUBMITTED:
        raise Conflict("voucher.already-reviewed", status=application.status.value)
    programme = get_programme(session, application.programme_id)
    application.reviewed_by = principal.user_id
    application.reviewed_at = now
    application.review_reason = data.reason
    if data.decision == "reject":
        if data.amount_fen is not None:
            raise Invalid("voucher.reject-without-amount")
        application.status = ApplicationStatus.REJECTED
        audit.record(
            session,
            now=now,
            actor=principal,
            action="application.rejected",
            programme_id=programme.id,
            org_id=application.org_id,
            application_id=application.id,
            reason=data.reason,
        )
        session.flush()
        return application
    amount = data.amount_fen if data.amount_fen is not None else application.requested_fen
    if amount > application.requested_fen:
        raise Invalid("voucher.above-requested", requested=format_fen(application.requested_fen))
    if amount < max(programme.min_claim_fen, 1):
        raise Invalid("voucher.below-min-claim", minimum=format_fen(max(programme.min_claim_fen, 1)))
    facts = tenant_facts(session, application.org_id)
    cap = year_cap_for(to_rules(programme), facts, shanghai_date(now))
    if cap is not None and amount > cap:
        raise Invalid("voucher.above-cap", cap=format_fen(cap))
    _no_valid_grant(session, programme.id, application.org_id, now)
    application.status = ApplicationStatus.APPROVED
    application.approved_fen = amount
    grant = VoucherGrant(
        programme_id=programme.id,
        org_id=application.org_id,
        application_id=application.id,
        amount_fen=amount,
        account_id=_fund_grant(session, programme, application, amount, principal, now),
        valid_from=now,
        valid_until=_valid_until(programme, now),
        status=GrantStatus.ACTIVE,
        created_at=now,
    )
    session.add(grant)
    session.flush()
    audit.record(
        session,
        now=now,
        actor=principal,
        action="application.approved",
        programme_id=programme.id,
        org_id=application.org_id,
        application_id=application.id,
        grant_id=grant.id,
        amount_fen=amount,
        reason=data.reason,
        detail={"valid_until": grant.valid_until.isoformat()},
    )
    session.flush()
    return application


def _valid_until(programme: VoucherProgramme, now: datetime) -> datetime:
    """A grant is valid for the programme's validity from its approval, else until the programme ends
    (the end of its last day, Asia/Shanghai)."""
    if programme.grant_validity_days is not None:
        return now + timedelta(days=programme.grant_validity_days)
    return datetime.combine(programme.ends_on + timedelta(days=1), time(), SHANGHAI).astimezone(now.tzinfo)


def _fund_grant(
    session: Session,
    programme: VoucherProgramme,
    application: VoucherApplication,
    amount: int,
    principal: Principal,
    now: datetime,
) -> int:
    """Open the grant's account and fund it from the budget; its id. Refused when the budget is short."""
    budget_spec = accounts.budget(programme.id)
    grant_spec = accounts.grant(programme.id, application.id, application.org_id)
    found = chart.ensure(session, [budget_spec, grant_spec])
    spec = TransferSpec(
        id=f"voucher/{programme.id}/grant/{application.id}/fund",
        debit_account_id=found[budget_spec.key].id,
        credit_account_id=found[grant_spec.key].id,
        amount=amount,
        ledger=chart.LEDGER,
        code="voucher-grant",
        reference=f"voucher-application:{application.id}",
        user_id=principal.user_id,
    )
    (result,) = ledger.create_transfers(session, [spec], now=now)
    if result is TransferResult.EXCEEDS_CREDITS:
        left = ledger.balance(session, found[budget_spec.key].id)
        raise Conflict(
            "voucher.budget-exhausted",
            amount=format_fen(amount),
            left=format_fen(left.credits_posted - left.debits_posted),
        )
    audit.require_ok(result, spec.id)
    return found[grant_spec.key].id


# --- grants --------------------------------------------------------------------------------------


def visible_grants(principal: Principal) -> Select[tuple[VoucherGrant]]:
    return visible(principal, VoucherGrant)


def get_grant(session: Session, *, principal: Principal, grant_id: int) -> VoucherGrant:
    found = session.scalar(visible_grants(principal).where(VoucherGrant.id == grant_id))
    if found is None:
        raise NotFound("not-found", what="voucher grant", id=grant_id)
    return found


def read_grant(session: Session, grant: VoucherGrant) -> GrantRead:
    b = ledger.balance(session, grant.account_id)
    return GrantRead(
        id=grant.id,
        programme_id=grant.programme_id,
        org_id=grant.org_id,
        application_id=grant.application_id,
        amount_fen=grant.amount_fen,
        valid_from=grant.valid_from,
        valid_until=grant.valid_until,
        status=grant.status.value,
        expired_at=grant.expired_at,
        returned_fen=grant.returned_fen,
        account_id=grant.account_id,
        redeemed_fen=b.debits_posted - (grant.returned_fen or 0),
        claimed_fen=b.debits_pending,
        available_fen=b.credits_posted - b.debits_posted - b.debits_pending,
    )


def expire_grants(session: Session, *, now: datetime, actor: Principal | None = None) -> tuple[int, int]:
    """Grants past their validity: what they still hold goes back to the budget, the account is closed.
    Quarterly claims already made stay payable. Returns (grants expired, fen returned)."""
    due = session.scalars(
        select(VoucherGrant)
        .where(VoucherGrant.status == GrantStatus.ACTIVE, VoucherGrant.valid_until <= now)
        .order_by(VoucherGrant.id)
        .limit(500)
    ).all()
    returned_total = 0
    for grant in due:
        balances = ledger.lock_accounts(session, [grant.account_id])[grant.account_id]
        left = balances.credits_posted - balances.debits_posted - balances.debits_pending
        if left > 0:
            budget_account = chart.ensure(session, [accounts.budget(grant.programme_id)])[
                accounts.budget(grant.programme_id).key
            ]
            spec = TransferSpec(
                id=f"voucher/{grant.programme_id}/grant/{grant.application_id}/expiry",
                debit_account_id=grant.account_id,
                credit_account_id=budget_account.id,
                amount=left,
                ledger=chart.LEDGER,
                code="voucher-expiry",
                reference=f"voucher-grant:{grant.id}",
            )
            (result,) = ledger.create_transfers(session, [spec], now=now)
            audit.require_ok(result, spec.id)
        ledger.close_account(session, account_id=grant.account_id, now=now)
        grant.status = GrantStatus.EXPIRED
        grant.expired_at = now
        grant.returned_fen = left
        returned_total += left
        audit.record(
            session,
            now=now,
            actor=actor,
            action="grant.expired",
            programme_id=grant.programme_id,
            org_id=grant.org_id,
            grant_id=grant.id,
            amount_fen=left,
        )
    session.flush()
    return len(due), returned_total


# --- flags ---------------------------------------------------------------------------------------


def add_flag(session: Session, *, principal: Principal, data: FlagCreate, now: datetime) -> VoucherFlag:
    """Suspend a tenant's redemptions, or record a credit default (regulator)."""
    require_regulator(principal)
    get_or_404(session, Organisation, data.org_id, what="organisation")
    if data.effective_on > shanghai_date(now):
        raise Invalid("voucher.flag-in-future")
    flag = VoucherFlag(
        org_id=data.org_id,
        kind=FlagKind(data.kind),
        effective_on=data.effective_on,
        reason=data.reason,
        created_by=principal.user_id,
        created_at=now,
    )
    session.add(flag)
    session.flush()
    audit.record(
        session,
        now=now,
        actor=principal,
        action=f"flag.{data.kind}",
        org_id=data.org_id,
        reason=data.reason,
        detail={"flag_id": flag.id, "effective_on": data.effective_on.isoformat()},
    )
    return flag


def lift_flag(
    session: Session, *, principal: Principal, flag_id: int, reason: str, now: datetime
) -> VoucherFlag:
    require_regulator(principal)
    flag = get_or_404(session, VoucherFlag, flag_id, what="voucher flag")
    if flag.lifted_at is not None:
        raise Conflict("voucher.flag-lifted")
    flag.lifted_at = now
    flag.lifted_by = principal.user_id
    flag.lift_reason = reason
    audit.record(
        session,
        now=now,
        actor=principal,
        action="flag.lifted",
        org_id=flag.org_id,
        reason=reason,
        detail={"flag_id": flag.id, "kind": flag.kind.value},
    )
    session.flush()
    return flag


def grant_account(session: Session, grant: VoucherGrant) -> LedgerAccount:
    return session.get_one(LedgerAccount, grant.account_id)
