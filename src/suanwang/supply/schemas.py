"""API shapes of the supply slice."""

from __future__ import annotations

from datetime import date, datetime
from typing import Annotated, Any

from pydantic import BaseModel, ConfigDict, Field, StrictInt, StringConstraints

from suanwang.fields import Code, Id, Name, Patch, ShortName, Strict, UtcDatetime
from suanwang.supply.models import BackendKind, Phase, ProviderKind, SecurityZone

Region = Code
Certification = Annotated[str, StringConstraints(strip_whitespace=True, min_length=1, max_length=64)]
# Strict: 8 must not arrive as 8.0 or "8"; zero and negatives are refused.
PositiveCount = Annotated[StrictInt, Field(gt=0, le=1_000_000)]


class ProviderCreate(Strict):
    code: Code
    name: Name
    name_en: Name | None = None
    kind: ProviderKind
    region: Region
    certifications: list[Certification] = Field(default_factory=list, max_length=32)
    affiliation_group: ShortName | None = None


class ProviderUpdate(Patch):
    nullable = frozenset({"name_en", "affiliation_group"})

    name: Name | None = None
    name_en: Name | None = None
    kind: ProviderKind | None = None
    region: Region | None = None
    certifications: list[Certification] | None = Field(default=None, max_length=32)
    affiliation_group: ShortName | None = None


class ProviderRead(BaseModel):
    model_config = ConfigDict(from_attributes=True)

    id: int
    code: str
    name: str
    name_en: str | None
    kind: ProviderKind
    region: str
    certifications: list[str]
    affiliation_group: str | None
    created_at: datetime
    updated_at: datetime
    retired_at: datetime | None


class SiteCreate(Strict):
    provider_id: Id
    code: Code
    name: Name
    name_en: Name | None = None
    region: Region | None = Field(default=None, description="defaults to the provider's region")
    backend_kind: BackendKind = BackendKind.SIMULATED
    connection: dict[str, Any] = Field(default_factory=dict)
    phase: Phase
    built_on: date | None = None
    operational_on: date | None = None


class SiteUpdate(Patch):
    nullable = frozenset({"name_en", "built_on", "operational_on"})

    name: Name | None = None
    name_en: Name | None = None
    region: Region | None = None
    backend_kind: BackendKind | None = None
    connection: dict[str, Any] | None = None
    phase: Phase | None = None
    built_on: date | None = None
    operational_on: date | None = None


class SiteRead(BaseModel):
    model_config = ConfigDict(from_attributes=True)

    id: int
    provider_id: int
    code: str
    name: str
    name_en: str | None
    region: str
    backend_kind: BackendKind
    connection: dict[str, Any] | None = Field(
        description="shown to the regulator and the site's operator only"
    )
    phase: Phase
    built_on: date | None
    operational_on: date | None
    created_at: datetime
    updated_at: datetime
    retired_at: datetime | None


class PoolCreate(Strict):
    site_id: Id
    code: Code
    name: Name
    accelerator: Annotated[str, StringConstraints(strip_whitespace=True, min_length=1, max_length=32)]
    nodes: PositiveCount
    cards_per_node: Annotated[StrictInt, Field(gt=0, le=64)]
    security_zone: SecurityZone = SecurityZone.PUBLIC


class PoolUpdate(Patch):
    name: Name | None = None
    nodes: PositiveCount | None = None
    security_zone: SecurityZone | None = None


class PoolRead(BaseModel):
    id: int
    site_id: int
    provider_id: int
    code: str
    name: str
    accelerator: str
    nodes: int
    cards_per_node: int
    cards: int
    dense_fp16_tflops_per_card: float
    pflops: float
    security_zone: SecurityZone
    region: str
    phase: Phase
    # What the controller last heard from the pool's backend: unhealthy pools get no new work.
    healthy: bool = True
    unhealthy_since: datetime | None = None
    health_message: str | None = None
    created_at: datetime
    updated_at: datetime
    retired_at: datetime | None


class RateCardCreate(Strict):
    price_fen_per_card_hour: Annotated[StrictInt, Field(gt=0, le=10_000_000)] = Field(
        description="integer fen (1 yuan = 100 fen) per card-hour"
    )
    effective_from: UtcDatetime
    effective_until: UtcDatetime | None = None


class RateCardRead(BaseModel):
    model_config = ConfigDict(from_attributes=True)

    id: int
    pool_id: int
    price_fen_per_card_hour: int
    currency: str
    effective_from: datetime
    effective_until: datetime | None
    created_at: datetime
    retired_at: datetime | None


class PriceAtRead(BaseModel):
    pool_id: int
    at: datetime
    rate_card_id: int
    price_fen_per_card_hour: int
    currency: str


class CapacityRowRead(BaseModel):
    key: dict[str, str]
    pools: int
    cards: int
    pflops: float  # datasheet: cards × the catalogue's dense FP16/BF16 TFLOPS
    verified_cards: int = 0  # cards whose node agent calibrated them
    verified_pflops: float = 0.0  # what those cards measured (agent calibrate), not a datasheet figure


class CapacityRead(BaseModel):
    group_by: list[str]
    rows: list[CapacityRowRead]
    total: CapacityRowRead
