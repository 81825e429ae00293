"""Money that people move: top-ups, refunds, adjustments, provider payouts, credit limits; and who may
see which accounts. Every movement is a ledger transfer carrying its reason and the acting user.

Only the regulator (the platform's operator) moves money: a top-up records money received from a
tenant, a payout money paid to a provider, a refund money returned to a tenant.
"""

from __future__ import annotations

import uuid
from datetime import datetime

from sqlalchemy import Select, select
from sqlalchemy.orm import Session

from suanwang.db.query import get_or_404
from suanwang.errors import Conflict, Forbidden, Invalid, NotFound
from suanwang.ledger import store as ledger
from suanwang.ledger.models import LedgerAccount, LedgerTransfer
from suanwang.ledger.rules import SUCCEEDED, AccountResult, AccountSpec, TransferResult, TransferSpec
from suanwang.settlement import chart
from suanwang.settlement.service import available_fen
from suanwang.supply.models import Provider
from suanwang.tenants.access import Principal, require_regulator
from suanwang.tenants.models import Organisation
from suanwang.units import format_fen

REASON_MAX = 500


def _check(amount_fen: int, reason: str) -> None:
    if amount_fen <= 0:
        raise Invalid("money.amount-positive", amount=amount_fen)
    if not reason.strip() or len(reason) > REASON_MAX:
        raise Invalid("money.reason-required", max=REASON_MAX)


def _send(session: Session, specs: list[TransferSpec], now: datetime) -> list[TransferResult]:
    results = ledger.create_transfers(session, specs, now=now)
    for spec, result in zip(specs, results, strict=True):
        if result is TransferResult.EXCEEDS_CREDITS:
            account = session.get_one(LedgerAccount, spec.debit_account_id)
            raise Conflict(
                "money.insufficient",
                account=account.key,
                amount=format_fen(spec.amount or 0),
                available=format_fen(available_fen(session, account.id)),
            )
        if result not in SUCCEEDED and result is not TransferResult.LINKED_EVENT_FAILED:
            raise Conflict("money.refused", reason=result.value)
    return results


def _transfer(
    debit: LedgerAccount,
    credit: LedgerAccount,
    amount: int,
    code: str,
    *,
    principal: Principal,
    reason: str,
    reference: str,
    linked: bool = False,
) -> TransferSpec:
    return TransferSpec(
        id=f"{code}/{uuid.uuid4().hex}",
        debit_account_id=debit.id,
        credit_account_id=credit.id,
        amount=amount,
        ledger=chart.LEDGER,
        code=code,
        reference=reference,
        reason=reason.strip(),
        user_id=principal.user_id,
        linked=linked,
    )


def _org(session: Session, org_id: int) -> Organisation:
    return get_or_404(session, Organisation, org_id, what="organisation")


def top_up(
    session: Session, *, principal: Principal, org_id: int, amount_fen: int, reason: str, now: datetime
) -> LedgerTransfer:
    """Money received from a tenant: external → wallet. Arrears, if any, are repaid from it first."""
    require_regulator(principal)
    _check(amount_fen, reason)
    _org(session, org_id)
    accounts = chart.ensure(session, [chart.EXTERNAL, chart.wallet(org_id), chart.arrears(org_id)])
    wallet, debt = accounts[chart.wallet(org_id).key], accounts[chart.arrears(org_id).key]
    owed = ledger.balance(session, debt.id)
    arrears = owed.debits_posted - owed.credits_posted
    repay = min(arrears, amount_fen)
    ref = f"org:{org_id}"
    specs = [
        _transfer(
            accounts[chart.EXTERNAL.key],
            wallet,
            amount_fen,
            "top-up",
            principal=principal,
            reason=reason,
            reference=ref,
            linked=repay > 0,
        )
    ]
    if repay:
        specs.append(
            _transfer(
                wallet, debt, repay, "arrears-repaid", principal=principal, reason=reason, reference=ref
            )
        )
    _send(session, specs, now)
    return session.get_one(LedgerTransfer, specs[0].id)


def _move_one(
    session: Session,
    *,
    principal: Principal,
    debit: AccountSpec,
    credit: AccountSpec,
    amount_fen: int,
    code: str,
    reason: str,
    reference: str,
    now: datetime,
) -> LedgerTransfer:
    """One transfer between two accounts of the chart (created on first use), refused as a whole."""
    accounts = chart.ensure(session, [debit, credit])
    spec = _transfer(
        accounts[debit.key],
        accounts[credit.key],
        amount_fen,
        code,
        principal=principal,
        reason=reason,
        reference=reference,
    )
    _send(session, [spec], now)
    return session.get_one(LedgerTransfer, spec.id)


def refund(
    session: Session, *, principal: Principal, org_id: int, amount_fen: int, reason: str, now: datetime
) -> LedgerTransfer:
    """Money returned to a tenant from its wallet: wallet → external (never more than it can pay)."""
    require_regulator(principal)
    _check(amount_fen, reason)
    _org(session, org_id)
    return _move_one(
        session,
        principal=principal,
        debit=chart.wallet(org_id),
        credit=chart.EXTERNAL,
        amount_fen=amount_fen,
        code="refund",
        reason=reason,
        reference=f"org:{org_id}",
        now=now,
    )


def adjust(
    session: Session, *, principal: Principal, org_id: int, amount_fen: int, reason: str, now: datetime
) -> LedgerTransfer:
    """A manual correction of a wallet, up (positive) or down (negative), with its reason."""
    require_regulator(principal)
    if amount_fen == 0:
        raise Invalid("money.amount-nonzero")
    _check(abs(amount_fen), reason)
    _org(session, org_id)
    wallet = chart.wallet(org_id)
    debit, credit = (chart.EXTERNAL, wallet) if amount_fen > 0 else (wallet, chart.EXTERNAL)
    return _move_one(
        session,
        principal=principal,
        debit=debit,
        credit=credit,
        amount_fen=abs(amount_fen),
        code="adjustment",
        reason=reason,
        reference=f"org:{org_id}",
        now=now,
    )


def payout(
    session: Session, *, principal: Principal, provider_id: int, amount_fen: int, reason: str, now: datetime
) -> LedgerTransfer:
    """Money paid to a provider: payable → external (never more than it is owed)."""
    require_regulator(principal)
    _check(amount_fen, reason)
    get_or_404(session, Provider, provider_id, what="provider")
    return _move_one(
        session,
        principal=principal,
        debit=chart.provider(provider_id),
        credit=chart.EXTERNAL,
        amount_fen=amount_fen,
        code="payout",
        reason=reason,
        reference=f"provider:{provider_id}",
        now=now,
    )


def set_credit_limit(
    session: Session, *, principal: Principal, org_id: int, credit_limit_fen: int
) -> LedgerAccount:
    """How far the regulator lets a tenant's wallet go below zero (0: prepaid only)."""
    require_regulator(principal)
    if credit_limit_fen < 0:
        raise Invalid("money.limit-negative", limit=credit_limit_fen)
    _org(session, org_id)
    wallet = chart.ensure(session, [chart.wallet(org_id)])[chart.wallet(org_id).key]
    result = ledger.set_credit_limit(session, account_id=wallet.id, credit_limit_fen=credit_limit_fen)
    if result not in (AccountResult.OK, AccountResult.EXISTS):
        raise Conflict("money.refused", reason=result.value)
    session.refresh(wallet)
    return wallet


# --- reading -------------------------------------------------------------------------------------


def visible_accounts(principal: Principal) -> Select[tuple[LedgerAccount]]:
    """Tenants see their organisation's accounts, operators their provider's, the regulator all."""
    stmt = select(LedgerAccount)
    if principal.is_regulator:
        return stmt
    if principal.is_tenant and principal.org_id is not None:
        return stmt.where(
            LedgerAccount.owner_kind == "organisation", LedgerAccount.owner_id == principal.org_id
        )
    if principal.provider_id is not None:
        return stmt.where(
            LedgerAccount.owner_kind == "provider", LedgerAccount.owner_id == principal.provider_id
        )
    return stmt.where(LedgerAccount.id.is_(None))


def get_account(session: Session, *, principal: Principal, account_id: int) -> LedgerAccount:
    account = session.scalar(visible_accounts(principal).where(LedgerAccount.id == account_id))
    if account is None:
        raise NotFound("not-found", what="account", id=account_id)
    return account


def org_accounts(session: Session, *, principal: Principal, org_id: int) -> list[LedgerAccount]:
    """An organisation's wallet and arrears (created on first look, so a new tenant sees zero)."""
    if not principal.belongs_to(org_id):
        raise Forbidden("money.not-your-org")
    _org(session, org_id)
    found = chart.ensure(session, [chart.wallet(org_id), chart.arrears(org_id)])
    return [found[chart.wallet(org_id).key], found[chart.arrears(org_id).key]]


def transfers_of(session: Session, *, reference: str) -> list[LedgerTransfer]:
    """Every transfer made for one cause (e.g. "job:42"), in order."""
    return list(
        session.scalars(
            select(LedgerTransfer).where(LedgerTransfer.reference == reference).order_by(LedgerTransfer.seq)
        )
    )
