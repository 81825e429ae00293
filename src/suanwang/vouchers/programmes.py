"""Voucher programmes: presets, creation (with the budget funded in the ledger), reading, the budget."""

from __future__ import annotations

import tomllib
from datetime import date, datetime
from functools import cache
from importlib import resources
from typing import Any

from sqlalchemy import func, select
from sqlalchemy.orm import Session

from suanwang.db.query import get_or_404
from suanwang.errors import Conflict, Invalid, NotFound
from suanwang.ledger import store as ledger
from suanwang.ledger.rules import TransferSpec
from suanwang.settlement import chart
from suanwang.tenants.access import Principal, require_regulator
from suanwang.vouchers import accounts, audit
from suanwang.vouchers.models import (
    GrantStatus,
    RedemptionStatus,
    VoucherGrant,
    VoucherProgramme,
    VoucherRedemption,
)
from suanwang.vouchers.rules import (
    Cadence,
    Programme,
    ProviderRules,
    Stacking,
    TenantRules,
    Tier,
    may_coexist,
    problems,
)
from suanwang.vouchers.schemas import BudgetRead, ProgrammeCreate, TenantRulesSpec, TierSpec

REQUIRED = ("code", "name", "issuer", "starts_on", "ends_on", "budget_fen", "ratio_bp")
_PRESET_ONLY = ("required", "notes")


# --- presets -------------------------------------------------------------------------------------


@cache
def presets() -> dict[str, dict[str, Any]]:
    """The shipped presets by name (see presets.toml)."""
    text = resources.files("suanwang.vouchers").joinpath("presets.toml").read_text(encoding="utf-8")
    return tomllib.loads(text)


def preset(name: str) -> dict[str, Any]:
    found = presets().get(name)
    if found is None:
        raise NotFound("voucher.unknown-preset", name=name, presets=", ".join(sorted(presets())))
    return found


def _merged(data: ProgrammeCreate) -> tuple[dict[str, Any], list[str]]:
    """The preset's values overlaid with what the request sets; and every required value still missing."""
    given = data.model_dump(exclude_unset=True, exclude={"preset"})
    values: dict[str, Any] = {}
    required = list(REQUIRED)
    if data.preset is not None:
        base = preset(data.preset)
        values = {k: v for k, v in base.items() if k not in _PRESET_ONLY}
        values.setdefault("code", data.preset)
        required += base.get("required", [])
    for key, value in given.items():
        if isinstance(value, dict) and isinstance(values.get(key), dict):
            values[key] = {**values[key], **value}
        else:
            values[key] = value
    missing = [name for name in dict.fromkeys(required) if _lookup(values, name) in (None, "", [])]
    return values, missing


def _lookup(values: dict[str, Any], dotted: str) -> Any:
    value: Any = values
    for part in dotted.split("."):
        value = value.get(part) if isinstance(value, dict) else None
    return value


# --- the rules' view of a programme --------------------------------------------------------------


def to_rules(row: VoucherProgramme) -> Programme:
    tenant = TenantRulesSpec.model_validate(row.tenant_rules)
    provider = row.provider_rules
    return Programme(
        code=row.code,
        ratio_bp=row.ratio_bp,
        tiers=tuple(_tier(TierSpec.model_validate(t)) for t in row.tiers),
        cap_order_fen=row.cap_order_fen,
        cap_enterprise_year_fen=row.cap_enterprise_year_fen,
        budget_fen=row.budget_fen,
        min_claim_fen=row.min_claim_fen,
        tenants=TenantRules(
            localities=tuple(tenant.localities),
            kinds=frozenset(tenant.kinds),
            sme_only=tenant.sme_only,
            sme_exempt_tiers=frozenset(tenant.sme_exempt_tiers),
            segments=frozenset(tenant.segments),
            registry_tiers=frozenset(tenant.registry_tiers),
            no_default_years=tenant.no_default_years,
        ),
        providers=ProviderRules(
            designated=frozenset(provider.get("designated", [])),
            regions=tuple(provider.get("regions", [])),
            local_only=bool(provider.get("local_only", False)),
        ),
        excluded_kinds=frozenset(row.excluded_kinds),
        stacking=Stacking(row.stacking),
        stack_order=row.stack_order,
        cadence=Cadence(row.cadence),
        starts_on=row.starts_on,
        ends_on=row.ends_on,
        grant_validity_days=row.grant_validity_days,
    )


def _tier(spec: TierSpec) -> Tier:
    return Tier(
        name=spec.name,
        ratio_bp=spec.ratio_bp,
        domestic=spec.domestic,
        workload=spec.workload,
        filed_model=spec.filed_model,
        registry_tiers=frozenset(spec.registry_tiers),
        startup_max_age_months=spec.startup_max_age_months,
        cap_enterprise_year_fen=spec.cap_enterprise_year_fen,
    )


# --- create and read -----------------------------------------------------------------------------


def create_programme(
    session: Session, *, principal: Principal, data: ProgrammeCreate, now: datetime
) -> VoucherProgramme:
    """Create a programme (regulator) and fund its budget account; nothing is stored if anything is wrong."""
    require_regulator(principal)
    values, missing = _merged(data)
    if missing:
        raise Invalid("voucher.missing-fields", fields=", ".join(missing))
    spec = ProgrammeCreate.model_validate(values)
    row = VoucherProgramme(
        code=spec.code,
        name=spec.name,
        name_en=spec.name_en,
        issuer=spec.issuer,
        preset=data.preset,
        source=spec.source,
        currency=spec.currency,
        starts_on=spec.starts_on,
        ends_on=spec.ends_on,
        budget_fen=spec.budget_fen,
        ratio_bp=spec.ratio_bp,
        tiers=[t.model_dump(mode="json", exclude_defaults=True) for t in spec.tiers or []],
        cap_order_fen=spec.cap_order_fen,
        cap_enterprise_year_fen=spec.cap_enterprise_year_fen,
        min_claim_fen=spec.min_claim_fen or 0,
        tenant_rules=(spec.tenant_rules or TenantRulesSpec()).model_dump(mode="json", exclude_defaults=True),
        provider_rules=spec.provider_rules.model_dump(mode="json", exclude_defaults=True)
        if spec.provider_rules
        else {},
        excluded_kinds=list(
            spec.excluded_kinds if spec.excluded_kinds is not None else ["storage", "network"]
        ),
        stacking=spec.stacking or Stacking.NONE,
        stack_order=spec.stack_order or 0,
        cadence=spec.cadence or Cadence.PER_JOB,
        grant_validity_days=spec.grant_validity_days,
        created_at=now,
        created_by=principal.user_id,
    )
    rules = to_rules(row)
    found = problems(rules)
    for tier in rules.tiers:
        if tier.cap_enterprise_year_fen is not None and not tier.tenant_only:
            found.append(("voucher.tier-cap-needs-tenant-tier", {"tier": tier.name}))
    if found:
        key, params = found[0]
        raise Invalid(key, **params)
    if session.scalar(select(VoucherProgramme.id).where(VoucherProgramme.code == row.code)) is not None:
        raise Conflict("voucher.duplicate-code", code=row.code)
    for other in session.scalars(select(VoucherProgramme)):
        if not may_coexist(rules, to_rules(other)):
            raise Conflict("voucher.overlap-no-stacking", other=other.code)
    session.add(row)
    session.flush()
    _fund_budget(session, row, principal, now)
    audit.record(
        session,
        now=now,
        actor=principal,
        action="programme.created",
        programme_id=row.id,
        amount_fen=row.budget_fen,
        detail={"code": row.code, "preset": data.preset},
    )
    return row


def _fund_budget(session: Session, row: VoucherProgramme, principal: Principal, now: datetime) -> None:
    found = chart.ensure(session, [chart.EXTERNAL, accounts.budget(row.id)])
    spec = TransferSpec(
        id=f"voucher/{row.id}/budget/fund",
        debit_account_id=found[chart.EXTERNAL.key].id,
        credit_account_id=found[accounts.budget(row.id).key].id,
        amount=row.budget_fen,
        ledger=chart.LEDGER,
        code="voucher-budget",
        reference=f"voucher:{row.id}",
        reason=f"programme {row.code}",
        user_id=principal.user_id,
    )
    (result,) = ledger.create_transfers(session, [spec], now=now)
    audit.require_ok(result, spec.id)


def get_programme(session: Session, programme_id: int) -> VoucherProgramme:
    return get_or_404(session, VoucherProgramme, programme_id, what="voucher programme")


def open_on(row: VoucherProgramme, on: date) -> bool:
    return row.starts_on <= on <= row.ends_on


def budget(session: Session, row: VoucherProgramme) -> BudgetRead:
    """Where the programme's money stands: granted, still unallocated, redeemed, claimed, clawed back."""
    budget_account = chart.ensure(session, [accounts.budget(row.id)])[accounts.budget(row.id).key]
    balances = ledger.balance(session, budget_account.id)
    sums = dict(
        session.execute(
            select(VoucherRedemption.status, func.coalesce(func.sum(VoucherRedemption.subsidy_fen), 0))
            .where(VoucherRedemption.programme_id == row.id)
            .group_by(VoucherRedemption.status)
        ).all()
    )
    clawed = session.scalar(
        select(func.coalesce(func.sum(VoucherRedemption.clawed_back_fen), 0)).where(
            VoucherRedemption.programme_id == row.id
        )
    )
    granted = session.scalar(
        select(
            func.coalesce(func.sum(VoucherGrant.amount_fen - func.coalesce(VoucherGrant.returned_fen, 0)), 0)
        ).where(VoucherGrant.programme_id == row.id, VoucherGrant.status.in_(list(GrantStatus)))
    )
    return BudgetRead(
        programme_id=row.id,
        budget_fen=row.budget_fen,
        granted_fen=int(granted or 0),
        unallocated_fen=balances.credits_posted - balances.debits_posted,
        redeemed_fen=int(sum(sums.values())),
        claimed_fen=int(sums.get(RedemptionStatus.CLAIMED, 0)),
        clawed_back_fen=int(clawed or 0),
    )
