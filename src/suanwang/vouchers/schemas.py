"""Request and response bodies of the vouchers API."""

from __future__ import annotations

from datetime import date, datetime
from typing import Annotated, Any, Literal

from pydantic import BaseModel, ConfigDict, Field, StrictInt, StringConstraints

from suanwang.fields import Code, Id, Name, ShortName, Strict
from suanwang.settlement.schemas import MAX_FEN
from suanwang.vouchers.rules import Cadence, Stacking

Fen = Annotated[StrictInt, Field(ge=0, le=MAX_FEN, description="in fen (1 yuan = 100 fen)")]
Reason = Annotated[str, StringConstraints(strip_whitespace=True, min_length=1, max_length=2000)]
Text = Annotated[str, StringConstraints(strip_whitespace=True, max_length=2000)]


class TierSpec(Strict):
    name: Annotated[str, StringConstraints(pattern=r"^[a-z0-9][a-z0-9_-]{0,39}$")]
    ratio_bp: StrictInt = Field(description="basis points: 3000 = 30 %")
    domestic: bool | None = None
    workload: Literal["training", "inference"] | None = None
    filed_model: bool | None = None
    registry_tiers: list[ShortName] = Field(default_factory=list)
    startup_max_age_months: Annotated[int, Field(ge=1, le=600)] | None = None
    cap_enterprise_year_fen: Fen | None = None


class TenantRulesSpec(Strict):
    localities: list[Annotated[str, StringConstraints(pattern=r"^\d{2,6}$")]] = Field(default_factory=list)
    kinds: list[Literal["enterprise", "government_unit", "research_institute", "university"]] = Field(
        default_factory=list
    )
    sme_only: bool = False
    sme_exempt_tiers: list[ShortName] = Field(default_factory=list)
    segments: list[ShortName] = Field(default_factory=list)
    registry_tiers: list[ShortName] = Field(default_factory=list)
    no_default_years: Annotated[int, Field(ge=1, le=50)] | None = None


class ProviderRulesSpec(Strict):
    designated: list[ShortName] = Field(default=[], description="provider codes")
    regions: list[ShortName] = Field(default=[], description="site-region prefixes")
    local_only: bool = False


class ProgrammeCreate(Strict):
    """A programme; with `preset`, every field left out is taken from the preset."""

    preset: Code | None = None
    code: Annotated[str, StringConstraints(pattern=r"^[a-z0-9][a-z0-9-]{0,39}$")] | None = None
    name: Name | None = None
    name_en: Name | None = None
    issuer: Name | None = None
    source: Text | None = None
    currency: Literal["CNY"] = "CNY"
    starts_on: date | None = None
    ends_on: date | None = Field(default=None, description="inclusive")
    budget_fen: Fen | None = None
    ratio_bp: StrictInt | None = Field(default=None, description="basis points: 5000 = 50 %")
    tiers: list[TierSpec] | None = None
    cap_order_fen: Fen | None = None
    cap_enterprise_year_fen: Fen | None = None
    min_claim_fen: Fen | None = None
    tenant_rules: TenantRulesSpec | None = None
    provider_rules: ProviderRulesSpec | None = None
    excluded_kinds: list[Literal["storage", "network", "compute"]] | None = None
    stacking: Stacking | None = None
    stack_order: Annotated[int, Field(ge=0, le=1000)] | None = None
    cadence: Cadence | None = None
    grant_validity_days: Annotated[int, Field(ge=1, le=3660)] | None = None


class ProgrammeRead(BaseModel):
    model_config = ConfigDict(from_attributes=True)

    id: int
    code: str
    name: str
    name_en: str | None
    issuer: str
    preset: str | None
    source: str | None
    currency: str
    starts_on: date
    ends_on: date
    budget_fen: int
    ratio_bp: int
    tiers: list[dict[str, Any]]
    cap_order_fen: int | None
    cap_enterprise_year_fen: int | None
    min_claim_fen: int
    tenant_rules: dict[str, Any]
    provider_rules: dict[str, Any]
    excluded_kinds: list[str]
    stacking: Stacking
    stack_order: int
    cadence: Cadence
    grant_validity_days: int | None
    created_at: datetime


class BudgetRead(BaseModel):
    programme_id: int
    budget_fen: int
    granted_fen: int  # moved from the budget to grants (net of what expired grants returned)
    unallocated_fen: int  # still in the budget account
    redeemed_fen: int  # paid from grants (settled or claimed)
    claimed_fen: int  # of which quarterly claims not yet settled
    clawed_back_fen: int


class PresetRead(BaseModel):
    name: str
    values: dict[str, Any]
    required: list[str]
    notes: str | None


class Attachment(Strict):
    name: ShortName
    size_bytes: Annotated[int, Field(ge=0, le=10**12)]
    sha256: Annotated[str, StringConstraints(pattern=r"^[0-9a-f]{64}$")]
    media_type: ShortName | None = None


class ApplicationCreate(Strict):
    programme_id: Id
    requested_fen: Fen
    purpose: Reason
    attachments: list[Attachment] = Field(default=[], max_length=50)
    org_id: Id | None = Field(default=None, description="the regulator applying on a tenant's behalf")


class ApplicationRead(BaseModel):
    model_config = ConfigDict(from_attributes=True)

    id: int
    programme_id: int
    org_id: int
    requested_fen: int
    purpose: str
    attachments: list[dict[str, Any]]
    status: str
    submitted_by: int
    submitted_at: datetime
    reviewed_by: int | None
    reviewed_at: datetime | None
    review_reason: str | None
    approved_fen: int | None
    grant_id: int | None = None


class Review(Strict):
    decision: Literal["approve", "reject"]
    amount_fen: Fen | None = Field(
        default=None, description="approve: the granted amount (default: the requested amount)"
    )
    reason: Reason


class GrantRead(BaseModel):
    id: int
    programme_id: int
    org_id: int
    application_id: int
    amount_fen: int
    valid_from: datetime
    valid_until: datetime
    status: str
    expired_at: datetime | None
    returned_fen: int | None
    account_id: int
    redeemed_fen: int  # posted
    claimed_fen: int  # pending quarterly claims
    available_fen: int


class RedemptionRead(BaseModel):
    model_config = ConfigDict(from_attributes=True)

    id: int
    programme_id: int
    grant_id: int
    org_id: int
    job_id: int
    part: str
    pool_id: int
    provider_id: int
    provider_local: bool
    at: datetime
    year: int
    charge_fen: int
    subsidy_fen: int
    tier: str | None
    refusals: list[dict[str, Any]]
    status: str
    transfer_ids: list[str]
    clawed_back_fen: int


class Clawback(Strict):
    amount_fen: Annotated[StrictInt, Field(gt=0, le=MAX_FEN)] | None = Field(
        default=None, description="default: all of the subsidy not yet clawed back"
    )
    reason: Reason


class FlagCreate(Strict):
    org_id: Id
    kind: Literal["suspended", "credit_default"]
    effective_on: date
    reason: Reason


class FlagLift(Strict):
    reason: Reason


class FlagRead(BaseModel):
    model_config = ConfigDict(from_attributes=True)

    id: int
    org_id: int
    kind: str
    effective_on: date
    reason: str
    created_by: int | None
    created_at: datetime
    lifted_at: datetime | None
    lifted_by: int | None
    lift_reason: str | None


class ClaimsSettled(BaseModel):
    programme_id: int
    quarter: str
    claims: int
    amount_fen: int


class ExpiredGrants(BaseModel):
    grants: int
    returned_fen: int


class AuditRead(BaseModel):
    model_config = ConfigDict(from_attributes=True)

    id: int
    at: datetime
    actor_id: int | None
    action: str
    programme_id: int | None
    org_id: int | None
    application_id: int | None
    grant_id: int | None
    job_id: int | None
    amount_fen: int | None
    reason: str | None
    detail: dict[str, Any]
