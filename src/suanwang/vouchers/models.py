"""Tables of the vouchers slice: programmes, applications, grants, redemptions, flags and the audit trail.

The money itself lives in the ledger (see `vouchers/accounts.py`): a programme's budget account, one
account per grant, and quota accounts that hold each tenant's annual cap. These tables say who decided
what, when and why, and feed the reports.
"""

from __future__ import annotations

import enum
from datetime import date, datetime
from typing import Any

from sqlalchemy import JSON, BigInteger, ForeignKey, Index, String, UniqueConstraint
from sqlalchemy.orm import Mapped, mapped_column

from suanwang.db.base import Base, IdMixin, enum_column
from suanwang.vouchers.rules import Cadence, Stacking


class ApplicationStatus(enum.StrEnum):
    SUBMITTED = "submitted"
    APPROVED = "approved"
    REJECTED = "rejected"


class GrantStatus(enum.StrEnum):
    ACTIVE = "active"
    EXPIRED = "expired"  # its validity ended; what was left went back to the budget


class RedemptionStatus(enum.StrEnum):
    PAID = "paid"  # per-job cadence: the provider was paid the subsidy at settlement
    CLAIMED = "claimed"  # quarterly cadence: a pending claim on the grant, settled with its quarter
    SETTLED = "settled"  # a quarterly claim that was settled


class FlagKind(enum.StrEnum):
    SUSPENDED = "suspended"  # the regulator stopped the tenant's redemptions (suspected fraud)
    CREDIT_DEFAULT = "credit_default"  # a credit-default record, dated


class VoucherProgramme(IdMixin, Base):
    __tablename__ = "voucher_programmes"

    code: Mapped[str] = mapped_column(String(40), unique=True)
    name: Mapped[str] = mapped_column(String(200))
    name_en: Mapped[str | None] = mapped_column(String(200))
    issuer: Mapped[str] = mapped_column(String(200))
    preset: Mapped[str | None] = mapped_column(String(40))
    source: Mapped[str | None] = mapped_column(String(2000))
    currency: Mapped[str] = mapped_column(String(3))
    starts_on: Mapped[date] = mapped_column()
    ends_on: Mapped[date] = mapped_column()  # inclusive
    budget_fen: Mapped[int] = mapped_column(BigInteger)
    ratio_bp: Mapped[int] = mapped_column()
    tiers: Mapped[list[dict[str, Any]]] = mapped_column(JSON, default=list)
    cap_order_fen: Mapped[int | None] = mapped_column(BigInteger)
    cap_enterprise_year_fen: Mapped[int | None] = mapped_column(BigInteger)
    min_claim_fen: Mapped[int] = mapped_column(BigInteger, default=0)
    tenant_rules: Mapped[dict[str, Any]] = mapped_column(JSON, default=dict)
    provider_rules: Mapped[dict[str, Any]] = mapped_column(JSON, default=dict)
    excluded_kinds: Mapped[list[str]] = mapped_column(JSON, default=list)
    stacking: Mapped[Stacking] = mapped_column(enum_column(Stacking, "voucher_stacking"))
    stack_order: Mapped[int] = mapped_column(default=0)
    cadence: Mapped[Cadence] = mapped_column(enum_column(Cadence, "voucher_cadence"))
    grant_validity_days: Mapped[int | None] = mapped_column()
    created_at: Mapped[datetime] = mapped_column()
    created_by: Mapped[int | None] = mapped_column(ForeignKey("users.id"))


class VoucherApplication(IdMixin, Base):
    __tablename__ = "voucher_applications"

    programme_id: Mapped[int] = mapped_column(ForeignKey("voucher_programmes.id"), index=True)
    org_id: Mapped[int] = mapped_column(ForeignKey("organisations.id"), index=True)
    requested_fen: Mapped[int] = mapped_column(BigInteger)
    purpose: Mapped[str] = mapped_column(String(2000))
    # Metadata of the supporting documents (name, size, SHA-256, media type); the files stay with the tenant.
    attachments: Mapped[list[dict[str, Any]]] = mapped_column(JSON, default=list)
    status: Mapped[ApplicationStatus] = mapped_column(enum_column(ApplicationStatus, "voucher_application"))
    submitted_by: Mapped[int] = mapped_column(ForeignKey("users.id"))
    submitted_at: Mapped[datetime] = mapped_column()
    reviewed_by: Mapped[int | None] = mapped_column(ForeignKey("users.id"))
    reviewed_at: Mapped[datetime | None] = mapped_column()
    review_reason: Mapped[str | None] = mapped_column(String(2000))
    approved_fen: Mapped[int | None] = mapped_column(BigInteger)


class VoucherGrant(IdMixin, Base):
    """What the regulator granted one organisation (non-transferable), held in its own ledger account."""

    __tablename__ = "voucher_grants"

    programme_id: Mapped[int] = mapped_column(ForeignKey("voucher_programmes.id"), index=True)
    org_id: Mapped[int] = mapped_column(ForeignKey("organisations.id"), index=True)
    application_id: Mapped[int] = mapped_column(ForeignKey("voucher_applications.id"), unique=True)
    amount_fen: Mapped[int] = mapped_column(BigInteger)
    account_id: Mapped[int] = mapped_column(ForeignKey("ledger_accounts.id"))
    valid_from: Mapped[datetime] = mapped_column()
    valid_until: Mapped[datetime] = mapped_column(index=True)  # exclusive
    status: Mapped[GrantStatus] = mapped_column(enum_column(GrantStatus, "voucher_grant"))
    expired_at: Mapped[datetime | None] = mapped_column()
    returned_fen: Mapped[int | None] = mapped_column(BigInteger)  # what went back to the budget at expiry
    created_at: Mapped[datetime] = mapped_column()


class VoucherRedemption(IdMixin, Base):
    """One decision on one pool's share of one charge: what the programme paid and why not more."""

    __tablename__ = "voucher_redemptions"
    __table_args__ = (
        # The same usage is never subsidised twice by one programme.
        UniqueConstraint("programme_id", "job_id", "part", "pool_id"),
        Index("ix_voucher_redemptions_org_at", "org_id", "at"),
    )

    programme_id: Mapped[int] = mapped_column(ForeignKey("voucher_programmes.id"), index=True)
    grant_id: Mapped[int] = mapped_column(ForeignKey("voucher_grants.id"), index=True)
    org_id: Mapped[int] = mapped_column(ForeignKey("organisations.id"))
    job_id: Mapped[int] = mapped_column(ForeignKey("jobs.id"), index=True)
    part: Mapped[str] = mapped_column(String(40))  # "" for the job's charge, "late/<usage id>" after it
    pool_id: Mapped[int] = mapped_column(ForeignKey("pools.id"))
    provider_id: Mapped[int] = mapped_column(ForeignKey("providers.id"), index=True)
    provider_local: Mapped[bool] = mapped_column()
    at: Mapped[datetime] = mapped_column()  # when the charge was settled
    year: Mapped[int] = mapped_column()  # the cap year (Asia/Shanghai calendar)
    charge_fen: Mapped[int] = mapped_column(BigInteger)
    subsidy_fen: Mapped[int] = mapped_column(BigInteger)
    tier: Mapped[str | None] = mapped_column(String(40))
    refusals: Mapped[list[dict[str, Any]]] = mapped_column(JSON, default=list)
    status: Mapped[RedemptionStatus] = mapped_column(enum_column(RedemptionStatus, "voucher_redemption"))
    # The ledger transfers that paid the subsidy (pending ones for a quarterly claim).
    transfer_ids: Mapped[list[str]] = mapped_column(JSON, default=list)
    clawed_back_fen: Mapped[int] = mapped_column(BigInteger, default=0)


class VoucherFlag(IdMixin, Base):
    """A regulator's mark on an organisation: suspended from redeeming, or a dated credit default."""

    __tablename__ = "voucher_flags"

    org_id: Mapped[int] = mapped_column(ForeignKey("organisations.id"), index=True)
    kind: Mapped[FlagKind] = mapped_column(enum_column(FlagKind, "voucher_flag"))
    effective_on: Mapped[date] = mapped_column()
    reason: Mapped[str] = mapped_column(String(2000))
    created_by: Mapped[int | None] = mapped_column(ForeignKey("users.id"))
    created_at: Mapped[datetime] = mapped_column()
    lifted_at: Mapped[datetime | None] = mapped_column()
    lifted_by: Mapped[int | None] = mapped_column(ForeignKey("users.id"))
    lift_reason: Mapped[str | None] = mapped_column(String(2000))


class VoucherAudit(IdMixin, Base):
    """Every voucher decision: who (a user, or the platform when actor is empty), when, what, why."""

    __tablename__ = "voucher_audit"

    at: Mapped[datetime] = mapped_column(index=True)
    actor_id: Mapped[int | None] = mapped_column(ForeignKey("users.id"))
    action: Mapped[str] = mapped_column(String(40))
    programme_id: Mapped[int | None] = mapped_column(ForeignKey("voucher_programmes.id"), index=True)
    org_id: Mapped[int | None] = mapped_column(ForeignKey("organisations.id"), index=True)
    application_id: Mapped[int | None] = mapped_column()
    grant_id: Mapped[int | None] = mapped_column()
    job_id: Mapped[int | None] = mapped_column()
    amount_fen: Mapped[int | None] = mapped_column(BigInteger)
    reason: Mapped[str | None] = mapped_column(String(2000))
    detail: Mapped[dict[str, Any]] = mapped_column(JSON, default=dict)
