"""Request and response bodies of the money API."""

from __future__ import annotations

from datetime import datetime

from pydantic import BaseModel, ConfigDict, Field, StrictInt

from suanwang.fields import Strict
from suanwang.ledger.models import LedgerAccount

MAX_FEN = 10**15  # ten trillion yuan: far above any real movement, far below BIGINT


class MoneyMove(Strict):
    amount_fen: StrictInt = Field(gt=0, le=MAX_FEN, description="in fen (1 yuan = 100 fen)")
    reason: str = Field(min_length=1, max_length=500)


class Adjustment(Strict):
    amount_fen: StrictInt = Field(
        ge=-MAX_FEN, le=MAX_FEN, description="in fen: positive adds to the wallet, negative takes away"
    )
    reason: str = Field(min_length=1, max_length=500)


class CreditLimit(Strict):
    credit_limit_fen: StrictInt = Field(ge=0, le=MAX_FEN)


class AccountRead(BaseModel):
    model_config = ConfigDict(from_attributes=True)

    id: int
    key: str
    ledger: str
    code: str
    owner_kind: str | None
    owner_id: int | None
    debits_pending: int
    debits_posted: int
    credits_pending: int
    credits_posted: int
    balance_fen: int = Field(description="credits posted − debits posted")
    held_fen: int = Field(description="debits pending (holds)")
    credit_limit_fen: int
    available_fen: int | None = Field(
        description="what a wallet can still pay: balance − held + credit limit"
    )
    closed_at: datetime | None
    created_at: datetime

    @classmethod
    def of(cls, account: LedgerAccount) -> AccountRead:
        balance = account.credits_posted - account.debits_posted
        limited = account.debits_must_not_exceed_credits
        return cls.model_validate(
            {
                **{name: getattr(account, name) for name in cls.model_fields if hasattr(account, name)},
                "balance_fen": balance,
                "held_fen": account.debits_pending,
                "available_fen": balance - account.debits_pending + account.credit_limit_fen
                if limited
                else None,
            }
        )


class BalanceRead(BaseModel):
    account_id: int
    at: datetime | None
    debits_pending: int
    debits_posted: int
    credits_pending: int
    credits_posted: int
    balance_fen: int


class TransferRead(BaseModel):
    model_config = ConfigDict(from_attributes=True)

    id: str
    seq: int
    debit_account_id: int
    credit_account_id: int
    amount: int
    ledger: str
    code: str
    reference: str | None
    pending: bool
    post_pending: bool
    void_pending: bool
    expired: bool
    pending_id: str | None
    expires_at: datetime | None
    reason: str | None
    user_id: int | None
    created_at: datetime
