"""The voucher audit trail: every decision — who (a user, or the platform), when, what, why."""

from __future__ import annotations

from datetime import datetime
from typing import Any

from sqlalchemy.orm import Session

from suanwang.ledger.rules import SUCCEEDED, TransferResult
from suanwang.tenants.access import Principal
from suanwang.vouchers.models import VoucherAudit


def record(
    session: Session,
    *,
    now: datetime,
    actor: Principal | None,
    action: str,
    programme_id: int | None = None,
    org_id: int | None = None,
    application_id: int | None = None,
    grant_id: int | None = None,
    job_id: int | None = None,
    amount_fen: int | None = None,
    reason: str | None = None,
    detail: dict[str, Any] | None = None,
) -> None:
    """Add one entry in the caller's transaction: it lands exactly when the decision does."""
    session.add(
        VoucherAudit(
            at=now,
            actor_id=actor.user_id if actor else None,
            action=action,
            programme_id=programme_id,
            org_id=org_id,
            application_id=application_id,
            grant_id=grant_id,
            job_id=job_id,
            amount_fen=amount_fen,
            reason=reason,
            detail=detail or {},
        )
    )


class VoucherLedgerError(RuntimeError):
    """The ledger refused a voucher transfer the service had checked: a bug or a data problem."""


def require_ok(result: TransferResult, transfer_id: str) -> None:
    if result not in SUCCEEDED:
        raise VoucherLedgerError(f"{transfer_id}: {result}")
