"""Tables of the enterprise registry (企业梯度培育库): the industry chain's segments, enterprises with their
tiers, investment projects (招商项目), monthly output statistics and the cultivation criteria.

The voucher rules read an enterprise's segments, tier and founding date from `enterprises`."""

from __future__ import annotations

import enum
from datetime import date, datetime

from sqlalchemy import JSON, BigInteger, ForeignKey, Integer, SmallInteger, String, UniqueConstraint
from sqlalchemy.orm import Mapped, mapped_column

from suanwang.db.base import Base, IdMixin, RetiredMixin, TimestampsMixin, enum_column


class Tier(enum.StrEnum):
    """The cultivation ladder, lowest first, and the registry's tiers for lead organisations of major
    projects (vouchers may give them their own ratio and cap)."""

    INNOVATIVE_SME = "innovative_sme"  # 创新型中小企业
    SPECIALISED_SME = "specialised_sme"  # 专精特新中小企业
    LITTLE_GIANT = "little_giant"  # 专精特新"小巨人"
    SINGLE_CHAMPION = "single_champion"  # 单项冠军
    LEADER = "leader"  # 领军企业
    MAJOR_PROJECT_LEAD_A = "major_project_lead_a"  # lead organisation of a major project (higher cap)
    MAJOR_PROJECT_LEAD_B = "major_project_lead_b"


class Stage(enum.StrEnum):
    UPSTREAM = "upstream"  # 上游: base hardware and software
    MIDSTREAM = "midstream"  # 中游: compute networks, services and platforms
    DOWNSTREAM = "downstream"  # 下游: applications


class ProjectStatus(enum.StrEnum):
    """A project moves forward only: signed → under construction → in production."""

    SIGNED = "signed"  # 已签约
    UNDER_CONSTRUCTION = "under_construction"  # 在建
    IN_PRODUCTION = "in_production"  # 已投产


class ChainSegment(IdMixin, TimestampsMixin, RetiredMixin, Base):
    """A segment of the industry chain; a sub-segment names its parent (one level deep)."""

    __tablename__ = "chain_segments"

    code: Mapped[str] = mapped_column(String(64), unique=True)
    stage: Mapped[Stage] = mapped_column(enum_column(Stage, "chain_stage"))
    parent_code: Mapped[str | None] = mapped_column(String(64))
    name_zh: Mapped[str] = mapped_column(String(100))
    name_en: Mapped[str] = mapped_column(String(100))
    position: Mapped[int] = mapped_column(Integer, default=0)


class Enterprise(IdMixin, TimestampsMixin, RetiredMixin, Base):
    __tablename__ = "enterprises"

    credit_code: Mapped[str] = mapped_column(String(18), unique=True)
    name: Mapped[str] = mapped_column(String(200))
    name_en: Mapped[str | None] = mapped_column(String(200))
    # The tenant organisation, when the enterprise also uses the platform.
    org_id: Mapped[int | None] = mapped_column(ForeignKey("organisations.id"), unique=True)
    locality_code: Mapped[str] = mapped_column(String(6))
    district: Mapped[str | None] = mapped_column(String(100))  # town or sub-district (镇街道)
    park: Mapped[str | None] = mapped_column(String(100))  # industrial park (园区)
    segments: Mapped[list[str]] = mapped_column(JSON, default=list)  # first = primary, for statistics
    # The highest tier granted and when (the history is in enterprise_tiers).
    tier: Mapped[Tier | None] = mapped_column(enum_column(Tier, "registry_tier"))
    tier_granted_on: Mapped[date | None] = mapped_column()
    founded_on: Mapped[date | None] = mapped_column()
    above_size: Mapped[bool] = mapped_column(default=False)  # 规上: above designated size
    employees: Mapped[int | None] = mapped_column(Integer)
    rd_intensity_bp: Mapped[int | None] = mapped_column(Integer)  # R&D spend / revenue, basis points
    patents: Mapped[int | None] = mapped_column(Integer)  # valid invention patents (I 类知识产权)
    contact_name: Mapped[str | None] = mapped_column(String(100))
    contact_phone: Mapped[str | None] = mapped_column(String(40))
    contact_email: Mapped[str | None] = mapped_column(String(200))


class EnterpriseTier(IdMixin, Base):
    """A tier granted to an enterprise on a date (a tier is granted once; revoking is recorded)."""

    __tablename__ = "enterprise_tiers"
    __table_args__ = (UniqueConstraint("enterprise_id", "tier"),)

    enterprise_id: Mapped[int] = mapped_column(ForeignKey("enterprises.id"), index=True)
    tier: Mapped[Tier] = mapped_column(enum_column(Tier, "registry_tier"))
    granted_on: Mapped[date] = mapped_column()
    revoked_on: Mapped[date | None] = mapped_column()
    recorded_at: Mapped[datetime] = mapped_column()


class Project(IdMixin, TimestampsMixin, RetiredMixin, Base):
    """An investment project (招商项目). Its name is its key (re-imports update it)."""

    __tablename__ = "registry_projects"

    name: Mapped[str] = mapped_column(String(200), unique=True)
    enterprise_id: Mapped[int] = mapped_column(ForeignKey("enterprises.id"), index=True)
    segment: Mapped[str] = mapped_column(String(64))
    # Total investment in CNY fen (the figure the statistics add up); a foreign-funded project also
    # keeps its foreign investment as signed, in US cents.
    investment_fen: Mapped[int] = mapped_column(BigInteger)
    foreign_funded: Mapped[bool] = mapped_column(default=False)
    foreign_usd_cents: Mapped[int | None] = mapped_column(BigInteger)
    signed_on: Mapped[date] = mapped_column()
    status: Mapped[ProjectStatus] = mapped_column(enum_column(ProjectStatus, "project_status"))
    construction_on: Mapped[date | None] = mapped_column()  # when construction started
    production_on: Mapped[date | None] = mapped_column()  # when production started
    department: Mapped[str | None] = mapped_column(String(100))  # 牵头部门
    chain_leader: Mapped[str | None] = mapped_column(String(100))  # 链长


class OutputRecord(IdMixin, TimestampsMixin, Base):
    """One enterprise's output value (产值) and revenue (营收) in one calendar month, as reported that
    month; `above_size` says whether the enterprise was counted among the 规上 enterprises then."""

    __tablename__ = "output_records"
    __table_args__ = (UniqueConstraint("enterprise_id", "year", "month"),)

    enterprise_id: Mapped[int] = mapped_column(ForeignKey("enterprises.id"), index=True)
    year: Mapped[int] = mapped_column(SmallInteger)
    month: Mapped[int] = mapped_column(SmallInteger)
    output_fen: Mapped[int] = mapped_column(BigInteger)
    revenue_fen: Mapped[int | None] = mapped_column(BigInteger)
    above_size: Mapped[bool] = mapped_column(default=True)


class CultivationCriteria(IdMixin, TimestampsMixin, Base):
    """The regulator's criteria for proposing promotions to a tier (the shipped defaults until set)."""

    __tablename__ = "cultivation_criteria"

    tier: Mapped[Tier] = mapped_column(enum_column(Tier, "registry_tier"), unique=True)
    criteria: Mapped[list[dict[str, object]]] = mapped_column(JSON, default=list)
