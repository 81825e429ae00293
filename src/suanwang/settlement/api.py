"""REST routes of money: accounts, balances, history; top-ups, refunds, adjustments, payouts, limits."""

from __future__ import annotations

from typing import Annotated, Any

from fastapi import APIRouter, Depends, Query
from fastapi.responses import Response

from suanwang.api.deps import Ctx, CtxDep, PageDep, request_lang
from suanwang.api.idempotency import IdemDep, IdempotencyKey, created
from suanwang.api.schemas import PROBLEM_RESPONSES, PageRead, page_read
from suanwang.db.query import page
from suanwang.errors import Forbidden, Invalid
from suanwang.fields import Id, UtcDatetime
from suanwang.ledger import store as ledger
from suanwang.ledger.models import LedgerAccount
from suanwang.settlement import funds, render, statements
from suanwang.settlement.schemas import (
    AccountRead,
    Adjustment,
    BalanceRead,
    CreditLimit,
    MoneyMove,
    TransferRead,
)
from suanwang.settlement.statements import Invoice, Statement

router = APIRouter(tags=["money"], responses=PROBLEM_RESPONSES)
LangDep = Annotated[str, Depends(request_lang)]


@router.get("/accounts", response_model=PageRead[AccountRead])
def list_accounts(
    ctx: CtxDep,
    paging: PageDep,
    code: Annotated[str | None, Query(max_length=32)] = None,
    owner_kind: Annotated[str | None, Query(max_length=32)] = None,
    owner_id: Id | None = None,
) -> dict[str, Any]:
    """Ledger accounts you may see (tenants: their organisation's; operators: their provider's)."""
    stmt = funds.visible_accounts(ctx.principal)
    if code is not None:
        stmt = stmt.where(LedgerAccount.code == code)
    if owner_kind is not None:
        stmt = stmt.where(LedgerAccount.owner_kind == owner_kind)
    if owner_id is not None:
        stmt = stmt.where(LedgerAccount.owner_id == owner_id)
    sortable = {"id": LedgerAccount.id, "key": LedgerAccount.key, "code": LedgerAccount.code}
    return page_read(page(ctx.session, stmt, paging, sortable=sortable), AccountRead.of)


@router.get("/accounts/{account_id}", response_model=AccountRead)
def get_account(account_id: Id, ctx: CtxDep) -> AccountRead:
    return AccountRead.of(funds.get_account(ctx.session, principal=ctx.principal, account_id=account_id))


@router.get("/accounts/{account_id}/balance", response_model=BalanceRead)
def account_balance(account_id: Id, ctx: CtxDep, at: UtcDatetime | None = None) -> BalanceRead:
    """Balances now, or as they stood at `at` (ISO 8601 with a time zone)."""
    account = funds.get_account(ctx.session, principal=ctx.principal, account_id=account_id)
    when = at
    b = ledger.balance(ctx.session, account.id, at=when)
    return BalanceRead(
        account_id=account.id,
        at=when,
        debits_pending=b.debits_pending,
        debits_posted=b.debits_posted,
        credits_pending=b.credits_pending,
        credits_posted=b.credits_posted,
        balance_fen=b.credits_posted - b.debits_posted,
    )


@router.get("/accounts/{account_id}/transfers", response_model=list[TransferRead])
def account_history(
    account_id: Id,
    ctx: CtxDep,
    after_seq: Annotated[int, Query(ge=0)] = 0,
    limit: Annotated[int, Query(ge=1, le=1000)] = 100,
) -> list[TransferRead]:
    """Transfers that moved money in or out of the account, oldest first; page with `after_seq`."""
    account = funds.get_account(ctx.session, principal=ctx.principal, account_id=account_id)
    rows = ledger.history(ctx.session, account.id, limit=limit, after_seq=after_seq)
    return [TransferRead.model_validate(row) for row in rows]


@router.get("/orgs/{org_id}/accounts", response_model=list[AccountRead])
def org_accounts(org_id: Id, ctx: CtxDep) -> list[AccountRead]:
    """An organisation's wallet and arrears."""
    accounts = funds.org_accounts(ctx.session, principal=ctx.principal, org_id=org_id)
    ctx.session.commit()  # they are created on first look
    return [AccountRead.of(a) for a in accounts]


def _moved(ctx: Ctx, idem: IdempotencyKey, move: Any, amount_fen: int, reason: str, **target: int) -> Any:
    """A money movement, made once per Idempotency-Key; 201 with its transfer."""
    return created(
        ctx,
        idem,
        lambda: TransferRead.model_validate(
            move(
                ctx.session,
                principal=ctx.principal,
                amount_fen=amount_fen,
                reason=reason,
                now=ctx.now,
                **target,
            )
        ),
    )


@router.post("/orgs/{org_id}/top-ups", status_code=201, response_model=TransferRead)
def top_up(org_id: Id, body: MoneyMove, ctx: CtxDep, idem: IdemDep) -> Any:
    """Record money received from the organisation (regulator); repays arrears first."""
    return _moved(ctx, idem, funds.top_up, body.amount_fen, body.reason, org_id=org_id)


@router.post("/orgs/{org_id}/refunds", status_code=201, response_model=TransferRead)
def refund(org_id: Id, body: MoneyMove, ctx: CtxDep, idem: IdemDep) -> Any:
    """Return money from the organisation's wallet to it (regulator)."""
    return _moved(ctx, idem, funds.refund, body.amount_fen, body.reason, org_id=org_id)


@router.post("/orgs/{org_id}/adjustments", status_code=201, response_model=TransferRead)
def adjust(org_id: Id, body: Adjustment, ctx: CtxDep, idem: IdemDep) -> Any:
    """Correct the organisation's wallet up or down, with the reason (regulator)."""
    return _moved(ctx, idem, funds.adjust, body.amount_fen, body.reason, org_id=org_id)


@router.put("/orgs/{org_id}/credit-limit", response_model=AccountRead)
def credit_limit(org_id: Id, body: CreditLimit, ctx: CtxDep) -> AccountRead:
    """How far the wallet may go below zero (regulator; 0 = prepaid only)."""
    wallet = funds.set_credit_limit(
        ctx.session, principal=ctx.principal, org_id=org_id, credit_limit_fen=body.credit_limit_fen
    )
    ctx.session.commit()
    return AccountRead.of(wallet)


@router.post("/providers/{provider_id}/payouts", status_code=201, response_model=TransferRead)
def payout(provider_id: Id, body: MoneyMove, ctx: CtxDep, idem: IdemDep) -> Any:
    """Record money paid to the provider from what it is owed (regulator)."""
    return _moved(ctx, idem, funds.payout, body.amount_fen, body.reason, provider_id=provider_id)


# --- invoices and statements ---------------------------------------------------------------------

FormatQuery = Annotated[str, Query(description="json, csv, xlsx, html or pdf")]


def _document(document: Invoice | Statement, fmt: str, lang: str, stem: str) -> Any:
    if fmt not in render.FORMATS:
        raise Invalid("statement.bad-format", value=fmt, formats=", ".join(render.FORMATS))
    body = render.render(document, fmt, lang)
    if isinstance(body, dict):
        return body
    disposition = "inline" if fmt in ("html", "pdf") else "attachment"
    return Response(
        body,
        media_type=render.MEDIA_TYPES[fmt],
        headers={"Content-Disposition": f'{disposition}; filename="{stem}-{document.month}.{fmt}"'},
    )


@router.get("/orgs/{org_id}/invoices/{month}")
def org_invoice(org_id: Id, month: str, ctx: CtxDep, lang: LangDep, format: FormatQuery = "json") -> Any:
    """The organisation's invoice for a month (YYYY-MM, Asia/Shanghai): every job charged in it."""
    if not ctx.principal.belongs_to(org_id):
        raise Forbidden("money.not-your-org")
    document = statements.invoice(ctx.session, org_id, statements.Month.parse(month))
    return _document(document, format, lang, f"invoice-org{org_id}")


@router.get("/providers/{provider_id}/statements/{month}")
def provider_statement(
    provider_id: Id, month: str, ctx: CtxDep, lang: LangDep, format: FormatQuery = "json"
) -> Any:
    """The provider's statement for a month: what its pools earned, the fee, payouts, what is owed."""
    if not ctx.principal.operates(provider_id):
        raise Forbidden("money.not-your-provider")
    document = statements.statement(ctx.session, provider_id, statements.Month.parse(month))
    return _document(document, format, lang, f"statement-provider{provider_id}")
