"""Request and response bodies of the registry API."""

from __future__ import annotations

from datetime import date, datetime
from typing import Annotated, Any, ClassVar

from pydantic import BaseModel, ConfigDict, Field, StrictInt, StringConstraints, model_validator

from suanwang.fields import Division, Email, Id, Name, Patch, ShortName, Strict
from suanwang.registry.models import ProjectStatus, Stage, Tier
from suanwang.settlement.schemas import MAX_FEN

SegmentCode = Annotated[str, StringConstraints(pattern=r"^[a-z][a-z0-9_]{0,63}$")]
Fen = Annotated[StrictInt, Field(ge=0, le=MAX_FEN, description="in fen (1 yuan = 100 fen)")]
Cents = Annotated[StrictInt, Field(ge=0, le=MAX_FEN, description="in US cents")]
Count = Annotated[StrictInt, Field(ge=0, le=10_000_000)]
BasisPoints = Annotated[StrictInt, Field(ge=0, le=10_000, description="basis points: 430 = 4.3 %")]
Phone = Annotated[str, StringConstraints(strip_whitespace=True, pattern=r"^[0-9+\-() ]{3,40}$")]


# --- segments ------------------------------------------------------------------------------------


class SegmentCreate(Strict):
    code: SegmentCode
    stage: Stage
    parent_code: SegmentCode | None = None
    name_zh: ShortName
    name_en: ShortName
    position: Annotated[int, Field(ge=0, le=100_000)] | None = None


class SegmentPatch(Patch):
    nullable: ClassVar[frozenset[str]] = frozenset({"parent_code"})

    name_zh: ShortName | None = None
    name_en: ShortName | None = None
    parent_code: SegmentCode | None = None
    position: Annotated[int, Field(ge=0, le=100_000)] | None = None
    retired: bool | None = None


class SegmentRead(BaseModel):
    model_config = ConfigDict(from_attributes=True)

    code: str
    stage: Stage
    parent_code: str | None
    name_zh: str
    name_en: str
    position: int
    retired_at: datetime | None


# --- enterprises ---------------------------------------------------------------------------------


class EnterpriseFields(Strict):
    name_en: Name | None = None
    locality_code: Division | None = None
    district: ShortName | None = None
    park: ShortName | None = None
    segments: list[SegmentCode] = Field(default_factory=list, max_length=20)
    founded_on: date | None = None
    above_size: bool = False
    employees: Count | None = None
    rd_intensity_bp: BasisPoints | None = None
    patents: Count | None = None
    contact_name: ShortName | None = None
    contact_phone: Phone | None = None
    contact_email: Email | None = None


class EnterpriseCreate(EnterpriseFields):
    credit_code: Annotated[str, StringConstraints(strip_whitespace=True, max_length=40)]
    name: Name
    tier: Tier | None = None
    tier_granted_on: date | None = None
    # The tenant organisation (by default the one with the same credit code, when there is one).
    org_id: Id | None = None

    @model_validator(mode="after")
    def _granted_with_tier(self) -> EnterpriseCreate:
        if self.tier_granted_on is not None and self.tier is None:
            raise ValueError("tier_granted_on needs a tier")
        return self


class EnterprisePatch(Patch):
    nullable: ClassVar[frozenset[str]] = frozenset(
        {
            "name_en",
            "district",
            "park",
            "founded_on",
            "employees",
            "rd_intensity_bp",
            "patents",
            "contact_name",
            "contact_phone",
            "contact_email",
            "org_id",
        }
    )

    name: Name | None = None
    name_en: Name | None = None
    locality_code: Division | None = None
    district: ShortName | None = None
    park: ShortName | None = None
    segments: list[SegmentCode] | None = Field(default=None, max_length=20)
    founded_on: date | None = None
    above_size: bool | None = None
    employees: Count | None = None
    rd_intensity_bp: BasisPoints | None = None
    patents: Count | None = None
    contact_name: ShortName | None = None
    contact_phone: Phone | None = None
    contact_email: Email | None = None
    org_id: Id | None = None
    retired: bool | None = None


class TierGrant(Strict):
    tier: Tier
    granted_on: date


class TierRevoke(Strict):
    revoked_on: date


class TierRead(BaseModel):
    model_config = ConfigDict(from_attributes=True)

    tier: Tier
    granted_on: date
    revoked_on: date | None


class EnterpriseRead(BaseModel):
    model_config = ConfigDict(from_attributes=True)

    id: int
    credit_code: str
    name: str
    name_en: str | None
    org_id: int | None
    locality_code: str
    district: str | None
    park: str | None
    segments: list[str]
    stage: str | None = None  # of the primary segment
    tier: Tier | None
    tier_granted_on: date | None
    founded_on: date | None
    above_size: bool
    employees: int | None
    rd_intensity_bp: int | None
    patents: int | None
    contact_name: str | None
    contact_phone: str | None
    contact_email: str | None
    created_at: datetime
    updated_at: datetime
    retired_at: datetime | None


class PlatformUse(BaseModel):
    """What the enterprise's tenant organisation did on the platform."""

    org_id: int
    jobs: dict[str, int]  # by state
    card_seconds: int
    charged_fen: int  # rated usage settled to its wallet
    subsidy_fen: int  # paid by voucher programmes (net of clawbacks)
    grants: list[dict[str, Any]]  # voucher grants: programme, amount, balance, status


class EnterpriseProfile(BaseModel):
    enterprise: EnterpriseRead
    tiers: list[TierRead]
    projects: list[ProjectRead]
    output: list[OutputRead]  # the last 24 months with a record
    platform: PlatformUse | None  # None when no tenant organisation is linked


# --- projects ------------------------------------------------------------------------------------


class ProjectCreate(Strict):
    name: Name
    enterprise_id: Id
    segment: SegmentCode
    investment_fen: Fen
    foreign_funded: bool = False
    foreign_usd_cents: Cents | None = None
    signed_on: date
    status: ProjectStatus = ProjectStatus.SIGNED
    construction_on: date | None = None
    production_on: date | None = None
    department: ShortName | None = None
    chain_leader: ShortName | None = None


class ProjectPatch(Patch):
    nullable: ClassVar[frozenset[str]] = frozenset(
        {"foreign_usd_cents", "construction_on", "production_on", "department", "chain_leader"}
    )

    name: Name | None = None
    segment: SegmentCode | None = None
    investment_fen: Fen | None = None
    foreign_funded: bool | None = None
    foreign_usd_cents: Cents | None = None
    signed_on: date | None = None
    status: ProjectStatus | None = None
    construction_on: date | None = None
    production_on: date | None = None
    department: ShortName | None = None
    chain_leader: ShortName | None = None
    retired: bool | None = None


class ProjectRead(BaseModel):
    model_config = ConfigDict(from_attributes=True)

    id: int
    name: str
    enterprise_id: int
    segment: str
    investment_fen: int
    foreign_funded: bool
    foreign_usd_cents: int | None
    signed_on: date
    status: ProjectStatus
    construction_on: date | None
    production_on: date | None
    department: str | None
    chain_leader: str | None
    retired_at: datetime | None


# --- output --------------------------------------------------------------------------------------


class OutputPut(Strict):
    output_fen: Fen
    revenue_fen: Fen | None = None
    above_size: bool | None = Field(default=None, description="counted among 规上 that month (default: flag)")


class OutputRead(BaseModel):
    model_config = ConfigDict(from_attributes=True)

    enterprise_id: int
    year: int
    month: int
    output_fen: int
    revenue_fen: int | None
    above_size: bool


# --- cultivation ---------------------------------------------------------------------------------


class CriterionSpec(Strict):
    metric: Annotated[str, StringConstraints(max_length=40)]
    minimum: StrictInt | None = None
    maximum: StrictInt | None = None
    group: Annotated[str, StringConstraints(max_length=40)] | None = None


class CriteriaRead(BaseModel):
    tier: Tier
    criteria: list[dict[str, Any]]
    custom: bool  # set by the regulator (False: the shipped defaults)


# --- import --------------------------------------------------------------------------------------


class RowProblem(BaseModel):
    row: int
    field: str
    value: str
    message: str


class ImportReport(BaseModel):
    dataset: str
    dry_run: bool
    rows: int
    created: int
    updated: int
    unchanged: int
    errors: list[RowProblem]


EnterpriseProfile.model_rebuild()
