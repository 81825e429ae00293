"""Tables of the enterprise registry (企业梯度培育库): enterprises of the industry chain, their segments and
tier. Issue 7 builds the registry's import, statistics and pages on this table; the voucher rules read
an enterprise's segments, tier and founding date from it."""

from __future__ import annotations

import enum
from datetime import date

from sqlalchemy import JSON, ForeignKey, String
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


class Enterprise(IdMixin, TimestampsMixin, RetiredMixin, Base):
    __tablename__ = "enterprises"

    credit_code: Mapped[str] = mapped_column(String(18), unique=True)
    name: Mapped[str] = mapped_column(String(200))
    name_en: Mapped[str | None] = mapped_column(String(200))
    # The tenant organisation, when the enterprise also uses the platform.
    org_id: Mapped[int | None] = mapped_column(ForeignKey("organisations.id"), unique=True)
    locality_code: Mapped[str] = mapped_column(String(6))
    segments: Mapped[list[str]] = mapped_column(JSON, default=list)  # industry-chain segment codes
    tier: Mapped[Tier | None] = mapped_column(enum_column(Tier, "registry_tier"))
    tier_granted_on: Mapped[date | None] = mapped_column()
    founded_on: Mapped[date | None] = mapped_column()
