"""Redemption inside settlement, quarterly claims, and clawback.

When a job's charge is settled, `plan` decides — under locks on the tenant's grant and cap accounts, so
racing settlements queue instead of spending the same headroom — what each programme the tenant holds
a grant in pays of each pool's share (`rules.stack`). Settlement then books, in one linked chain with
the tenant's and the providers' transfers: the tenant pays the charge less the subsidy, each grant
pays its subsidy to the provider (and the platform's fee where the subsidy exceeds what the provider
nets), and each subsidy moves the same amount of quota out of the tenant's annual cap account. The
provider receives the full charge less the fee either way. A quarterly programme's grant transfers are
pending claims, posted when the regulator settles the quarter.

A refused or partly refused subsidy is recorded with every reason (`VoucherRedemption.refusals`) and in
the audit trail.
"""

from __future__ import annotations

from collections.abc import Iterable, Sequence
from dataclasses import dataclass, field, replace
from datetime import date, datetime, time

from sqlalchemy import func, select
from sqlalchemy.orm import Session

from suanwang.catalog.catalog import find as find_accelerator
from suanwang.config import get_settings
from suanwang.db.query import get_or_404
from suanwang.errors import Conflict, Invalid
from suanwang.jobs.models import Job
from suanwang.ledger import store as ledger
from suanwang.ledger.models import LedgerAccount
from suanwang.ledger.rules import TransferResult, TransferSpec
from suanwang.settlement import chart
from suanwang.supply.models import Pool, Provider, Site
from suanwang.tenants.access import Principal, require_regulator
from suanwang.timeutil import SHANGHAI, shanghai_date
from suanwang.units import format_fen
from suanwang.vouchers import accounts, audit
from suanwang.vouchers.grants import tenant_facts
from suanwang.vouchers.models import (
    GrantStatus,
    RedemptionStatus,
    VoucherGrant,
    VoucherProgramme,
    VoucherRedemption,
)
from suanwang.vouchers.programmes import get_programme, to_rules
from suanwang.vouchers.rules import Cadence, Headroom, Line, Programme, Tenant, stack, year_cap_for
from suanwang.vouchers.schemas import ClaimsSettled

# Job types a tenant declares at submit that the voucher tiers read (workload, filed model).
WORKLOADS = {"training": ("training", None), "inference": ("inference", None)}
FILED_MODEL_SERVICE = "inference-filed-model"


@dataclass(slots=True)
class Draw:
    """What one programme's grant pays of one pool's share."""

    programme_id: int
    grant_account_id: int
    amount_fen: int
    pending: bool  # a quarterly claim
    record: VoucherRedemption | None = None  # filled with the transfers' ids once they are built


@dataclass(slots=True)
class Plan:
    by_pool: dict[int, list[Draw]] = field(default_factory=dict)
    quota: list[TransferSpec] = field(default_factory=list)
    records: list[VoucherRedemption] = field(default_factory=list)

    @property
    def total_fen(self) -> int:
        return sum(d.amount_fen for draws in self.by_pool.values() for d in draws)


def plan(
    session: Session,
    *,
    job: Job,
    shares: dict[int, int],
    providers: dict[int, int],
    part: str,
    prefix: str,
    at: datetime,
) -> Plan:
    """What the tenant's grants pay of this charge (its pools' shares), decided under the grant and cap
    accounts' locks. Nothing when the tenant holds no active grant."""
    if not any(shares.values()):
        return Plan()
    rows = session.execute(
        select(VoucherGrant, VoucherProgramme)
        .join(VoucherProgramme, VoucherProgramme.id == VoucherGrant.programme_id)
        .where(
            VoucherGrant.org_id == job.org_id,
            VoucherGrant.status == GrantStatus.ACTIVE,
            VoucherGrant.valid_from <= at,
            VoucherGrant.valid_until > at,
        )
        .order_by(VoucherProgramme.stack_order, VoucherGrant.valid_until, VoucherGrant.id)
    ).all()
    # One grant per programme: the one that expires first (approvals allow one valid grant at a time).
    held = list({programme.id: (grant, programme) for grant, programme in reversed(rows)}.values())[::-1]
    if not held:
        return Plan()
    done = session.scalars(
        select(VoucherRedemption).where(VoucherRedemption.job_id == job.id, VoucherRedemption.part == part)
    ).all()
    if done:  # settled before in a transaction that committed: the same draws again (transfers say exists)
        return _replan(session, done, job.org_id, prefix)
    facts = tenant_facts(session, job.org_id)
    lines = _lines(session, job, shares, providers)
    on = shanghai_date(at)
    inputs: list[tuple[Programme, Headroom]] = []
    caps: dict[int, LedgerAccount | None] = {}
    for grant, programme in held:
        rules = to_rules(programme)
        cap_account = open_cap(session, programme.id, rules, facts, on, at)
        caps[programme.id] = cap_account
        locked = ledger.lock_accounts(session, [grant.account_id] + ([cap_account.id] if cap_account else []))
        g = locked[grant.account_id]
        drawn = 0
        if cap_account is not None:
            # What the cap account still holds is the truth the ledger enforces (a cap changed after the
            # year's account opened never gives more than it holds).
            c = locked[cap_account.id]
            drawn = (year_cap_for(rules, facts, on) or 0) - (
                c.credits_posted - c.debits_posted - c.debits_pending
            )
        inputs.append(
            (
                rules,
                Headroom(
                    enterprise_year_redeemed_fen=max(drawn, 0),
                    grant_available_fen=g.credits_posted - g.debits_posted - g.debits_pending,
                    grant_valid_from=grant.valid_from,
                    grant_valid_until=grant.valid_until,
                ),
            )
        )
    result = Plan()
    decided_all = stack(inputs, facts, lines, at)  # in the order given: sorted by stack_order already
    for (grant, programme), (rules, decision) in zip(held, decided_all, strict=True):
        assert rules.code == programme.code  # stack() keeps the order of programmes already in order
        pending = rules.cadence is Cadence.QUARTERLY
        for line, decided in zip(lines, decision.lines, strict=True):
            pool_id = int(line.key)
            record = VoucherRedemption(
                programme_id=programme.id,
                grant_id=grant.id,
                org_id=job.org_id,
                job_id=job.id,
                part=part,
                pool_id=pool_id,
                provider_id=providers[pool_id],
                provider_local=line.provider_local,
                at=at,
                year=on.year,
                charge_fen=decided.charge_fen,
                subsidy_fen=decided.subsidy_fen,
                tier=decided.tier,
                refusals=[
                    {"reason": r.reason.value, "amount_fen": r.amount_fen, "detail": r.detail}
                    for r in decided.refusals
                ],
                status=RedemptionStatus.CLAIMED if pending and decided.subsidy_fen else RedemptionStatus.PAID,
                transfer_ids=[],
                clawed_back_fen=0,
            )
            result.records.append(record)
            if decided.subsidy_fen:
                result.by_pool.setdefault(pool_id, []).append(
                    Draw(programme.id, grant.account_id, decided.subsidy_fen, pending, record)
                )
        total = decision.subsidy_fen
        cap_account = caps[programme.id]
        if total and cap_account is not None:
            result.quota.append(_quota(job.id, prefix, programme.id, cap_account, session, total))
        audit.record(
            session,
            now=at,
            actor=None,
            action="redemption" if total else "redemption.refused",
            programme_id=programme.id,
            org_id=job.org_id,
            grant_id=grant.id,
            job_id=job.id,
            amount_fen=total,
            detail={
                "part": part,
                "charge_fen": decision.charge_fen,
                "refused": {reason.value: fen for reason, fen in decision.refused().items()},
            },
        )
    return result


def _quota(
    job_id: int, prefix: str, programme_id: int, cap_account: LedgerAccount, session: Session, amount: int
) -> TransferSpec:
    used = chart.ensure(session, [accounts.cap_used(programme_id)])[accounts.cap_used(programme_id).key]
    return TransferSpec(
        id=f"job/{job_id}/{prefix}v{programme_id}/cap",
        debit_account_id=cap_account.id,
        credit_account_id=used.id,
        amount=amount,
        ledger=accounts.QUOTA,
        code="voucher-cap",
        reference=f"job:{job_id}",
        linked=True,
    )


def _replan(session: Session, done: Sequence[VoucherRedemption], org_id: int, prefix: str) -> Plan:
    result = Plan()
    grant_accounts = {
        g.id: g.account_id
        for g in session.scalars(select(VoucherGrant).where(VoucherGrant.id.in_({r.grant_id for r in done})))
    }
    totals: dict[tuple[int, int], int] = {}
    for record in done:
        if record.subsidy_fen:
            pending = record.status is not RedemptionStatus.PAID
            result.by_pool.setdefault(record.pool_id, []).append(
                Draw(record.programme_id, grant_accounts[record.grant_id], record.subsidy_fen, pending)
            )
            key = (record.programme_id, record.year)
            totals[key] = totals.get(key, 0) + record.subsidy_fen
    job_id = done[0].job_id
    for (programme_id, year), total in totals.items():
        cap = session.scalar(
            select(LedgerAccount).where(LedgerAccount.key == accounts.cap(programme_id, org_id, year).key)
        )
        if cap is not None:
            result.quota.append(_quota(job_id, prefix, programme_id, cap, session, total))
    return result


def _lines(session: Session, job: Job, shares: dict[int, int], providers: dict[int, int]) -> list[Line]:
    rows = session.execute(
        select(Pool.id, Pool.accelerator, Site.region, Provider.code, Provider.affiliation_group)
        .join(Site, Site.id == Pool.site_id)
        .join(Provider, Provider.id == Site.provider_id)
        .where(Pool.id.in_(list(shares)))
    ).all()
    local = get_settings().local_region_set
    workload, filed = _workload(job.job_type)
    lines = []
    for pool_id, accelerator, region, provider_code, affiliation in sorted(rows):
        model = find_accelerator(accelerator)
        lines.append(
            Line(
                key=str(pool_id),
                amount_fen=shares[pool_id],
                provider_code=provider_code,
                provider_region=region,
                provider_local=region in local,
                provider_affiliation=affiliation,
                domestic=model.domestic if model else None,
                workload=workload,
                filed_model=filed,
            )
        )
    return lines


def _workload(job_type: str | None) -> tuple[str | None, bool | None]:
    if job_type == FILED_MODEL_SERVICE:
        return "inference", True
    if job_type in WORKLOADS:
        return job_type, None
    return None, None


def open_cap(
    session: Session, programme_id: int, rules: Programme, facts: Tenant, on: date, now: datetime
) -> LedgerAccount | None:
    """The tenant's cap account for the year of `on`, opened with its cap on first use (None: no cap)."""
    cap = year_cap_for(rules, facts, on)
    if cap is None:
        return None
    spec = accounts.cap(programme_id, facts.org_id, on.year)
    found = chart.ensure(session, [spec, accounts.cap_source(programme_id)])
    account = found[spec.key]
    if account.credits_posted == 0:
        opening = TransferSpec(
            id=f"{spec.key}/open",
            debit_account_id=found[accounts.cap_source(programme_id).key].id,
            credit_account_id=account.id,
            amount=cap,
            ledger=accounts.QUOTA,
            code="voucher-cap-open",
        )
        (result,) = ledger.create_transfers(session, [opening], now=now)
        audit.require_ok(result, opening.id)
        session.refresh(account)
    return account


# --- what settlement books -----------------------------------------------------------------------


def grant_transfers(
    draws: Sequence[Draw],
    *,
    net_fen: int,
    provider_account_id: int,
    fee_account_id: int,
    id_prefix: str,
    job_id: int,
) -> tuple[list[TransferSpec], int, int]:
    """The grants' transfers for one pool's share: each pays the provider up to what it nets, and the fee
    with the rest. Returns the transfers and how much of the provider's net and of the fee they paid."""
    specs: list[TransferSpec] = []
    to_provider = to_fee = 0
    for draw in draws:
        provider_part = min(draw.amount_fen, net_fen - to_provider)
        parts = [
            (provider_part, provider_account_id, "provider"),
            (draw.amount_fen - provider_part, fee_account_id, "fee"),
        ]
        for amount, credit, name in parts:
            if amount:
                spec = TransferSpec(
                    id=f"{id_prefix}v{draw.programme_id}/{name}",
                    debit_account_id=draw.grant_account_id,
                    credit_account_id=credit,
                    amount=amount,
                    ledger=chart.LEDGER,
                    code="voucher-redemption",
                    reference=f"job:{job_id}",
                    linked=True,
                    pending=draw.pending,
                )
                specs.append(spec)
                if draw.record is not None:
                    draw.record.transfer_ids = [*draw.record.transfer_ids, spec.id]
        to_provider += provider_part
        to_fee += draw.amount_fen - provider_part
    return specs, to_provider, to_fee


# --- quarterly claims ----------------------------------------------------------------------------


def parse_quarter(text: str) -> tuple[datetime, datetime]:
    """'2026Q3' -> [1 July, 1 October) 2026, Asia/Shanghai, as aware datetimes."""
    try:
        year, quarter = text.upper().split("Q")
        y, q = int(year), int(quarter)
        if not 1 <= q <= 4 or not 2000 <= y <= 2200:
            raise ValueError
    except ValueError:
        raise Invalid("voucher.bad-quarter", value=text) from None
    start = datetime.combine(date(y, 3 * q - 2, 1), time(), SHANGHAI)
    end = datetime.combine(date(y + (q == 4), 1 if q == 4 else 3 * q + 1, 1), time(), SHANGHAI)
    return start, end


def settle_claims(
    session: Session, *, principal: Principal, programme_id: int, quarter: str, now: datetime
) -> ClaimsSettled:
    """Post every open claim of a quarterly programme made in an ended quarter (regulator): the providers
    receive the vouchers' share."""
    require_regulator(principal)
    programme = get_programme(session, programme_id)
    start, end = parse_quarter(quarter)
    if now < end:
        raise Invalid("voucher.quarter-not-ended", quarter=quarter)
    claims = session.scalars(
        select(VoucherRedemption)
        .where(
            VoucherRedemption.programme_id == programme.id,
            VoucherRedemption.status == RedemptionStatus.CLAIMED,
            VoucherRedemption.at >= start,
            VoucherRedemption.at < end,
        )
        .order_by(VoucherRedemption.id)
    ).all()
    specs = [
        TransferSpec(
            id=f"{transfer_id}/settle",
            debit_account_id=0,
            credit_account_id=0,
            amount=None,
            ledger="",
            code="",
            pending_id=transfer_id,
            post_pending=True,
            user_id=principal.user_id,
        )
        for claim in claims
        for transfer_id in claim.transfer_ids
    ]
    for offset in range(0, len(specs), 1000):
        batch = specs[offset : offset + 1000]
        for spec, result in zip(batch, ledger.create_transfers(session, batch, now=now), strict=True):
            audit.require_ok(result, spec.id)
    amount = sum(c.subsidy_fen for c in claims)
    for claim in claims:
        claim.status = RedemptionStatus.SETTLED
    audit.record(
        session,
        now=now,
        actor=principal,
        action="claims.settled",
        programme_id=programme.id,
        amount_fen=amount,
        detail={"quarter": quarter, "claims": len(claims)},
    )
    session.flush()
    return ClaimsSettled(programme_id=programme.id, quarter=quarter, claims=len(claims), amount_fen=amount)


# --- clawback ------------------------------------------------------------------------------------


def clawback(
    session: Session,
    *,
    principal: Principal,
    redemption_id: int,
    amount_fen: int | None,
    reason: str,
    now: datetime,
) -> VoucherRedemption:
    """Take a subsidy back (regulator), by correcting transfers with the reason: the tenant pays it to
    the programme's budget from its wallet (or owes it as arrears), and the quota returns to its cap."""
    require_regulator(principal)
    record = get_or_404(session, VoucherRedemption, redemption_id, what="voucher redemption")
    if record.status is RedemptionStatus.CLAIMED:
        raise Conflict("voucher.claim-not-settled")
    left = record.subsidy_fen - record.clawed_back_fen
    amount = left if amount_fen is None else amount_fen
    if not 0 < amount <= left:
        raise Invalid("voucher.clawback-too-much", left=format_fen(left))
    org = record.org_id
    after = record.clawed_back_fen + amount
    found = chart.ensure(
        session,
        [
            chart.wallet(org),
            chart.arrears(org),
            accounts.budget(record.programme_id),
            accounts.cap_used(record.programme_id),
        ],
    )
    base = f"voucher/{record.programme_id}/clawback/{record.id}/{after}"
    budget_id = found[accounts.budget(record.programme_id).key].id

    def money(debit: str) -> TransferSpec:
        return TransferSpec(
            id=f"{base}/{'wallet' if debit == chart.wallet(org).key else 'arrears'}",
            debit_account_id=found[debit].id,
            credit_account_id=budget_id,
            amount=amount,
            ledger=chart.LEDGER,
            code="voucher-clawback",
            reference=f"job:{record.job_id}",
            reason=reason,
            user_id=principal.user_id,
            linked=True,
        )

    cap = session.scalar(
        select(LedgerAccount).where(
            LedgerAccount.key == accounts.cap(record.programme_id, org, record.year).key
        )
    )
    quota = (
        [
            TransferSpec(
                id=f"{base}/cap",
                debit_account_id=found[accounts.cap_used(record.programme_id).key].id,
                credit_account_id=cap.id,
                amount=amount,
                ledger=accounts.QUOTA,
                code="voucher-clawback",
                reference=f"job:{record.job_id}",
                reason=reason,
                user_id=principal.user_id,
            )
        ]
        if cap is not None
        else []
    )
    for debit in (chart.wallet(org).key, chart.arrears(org).key):
        chain = [money(debit), *quota]
        chain[-1] = replace(chain[-1], linked=False)
        results = ledger.create_transfers(session, chain, now=now)
        if results[0] is not TransferResult.EXCEEDS_CREDITS:
            for spec, result in zip(chain, results, strict=True):
                audit.require_ok(result, spec.id)
            break
    record.clawed_back_fen = after
    audit.record(
        session,
        now=now,
        actor=principal,
        action="clawback",
        programme_id=record.programme_id,
        org_id=org,
        grant_id=record.grant_id,
        job_id=record.job_id,
        amount_fen=amount,
        reason=reason,
        detail={
            "redemption_id": record.id,
            "from": "wallet" if debit == chart.wallet(org).key else "arrears",
        },
    )
    session.flush()
    return record


def programmes_of_jobs(session: Session, job_ids: Iterable[int]) -> dict[int, set[int]]:
    """The programmes that paid part of each job's charge (their grant transfers name them)."""
    found: dict[int, set[int]] = {}
    ids = list(job_ids)
    if not ids:
        return found
    rows = session.execute(
        select(VoucherRedemption.job_id, VoucherRedemption.programme_id)
        .where(VoucherRedemption.job_id.in_(ids), VoucherRedemption.subsidy_fen > 0)
        .distinct()
    )
    for job_id, programme_id in rows:
        found.setdefault(job_id, set()).add(programme_id)
    return found


def subsidies_of_jobs(session: Session, job_ids: Sequence[int]) -> list[dict[str, object]]:
    """What each programme paid (net of clawbacks) of these jobs' charges, for the tenant's invoice."""
    if not job_ids:
        return []
    rows = session.execute(
        select(
            VoucherProgramme.code,
            VoucherProgramme.name,
            VoucherProgramme.name_en,
            func.sum(VoucherRedemption.subsidy_fen - VoucherRedemption.clawed_back_fen),
        )
        .join(VoucherProgramme, VoucherProgramme.id == VoucherRedemption.programme_id)
        .where(VoucherRedemption.job_id.in_(list(job_ids)))
        .group_by(VoucherProgramme.code, VoucherProgramme.name, VoucherProgramme.name_en)
        .order_by(VoucherProgramme.code)
    )
    return [
        {"programme": code, "name": name, "name_en": name_en, "amount_fen": int(total or 0)}
        for code, name, name_en, total in rows
        if total
    ]
