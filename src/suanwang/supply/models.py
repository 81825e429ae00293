"""Tables of the supply slice: providers, their sites (clusters), pools of identical cards, rate cards."""

from __future__ import annotations

import enum
from datetime import date, datetime
from typing import Any

from sqlalchemy import JSON, BigInteger, CheckConstraint, ForeignKey, String, true
from sqlalchemy.orm import Mapped, mapped_column, relationship

from suanwang.db.base import Base, IdMixin, RetiredMixin, TimestampsMixin, enum_column


class ProviderKind(enum.StrEnum):
    INTELLIGENT_COMPUTING_CENTRE = "intelligent_computing_centre"
    SUPERCOMPUTING_CENTRE = "supercomputing_centre"
    EDGE_CENTRE = "edge_centre"
    GENERAL_CLOUD = "general_cloud"
    GOVERNMENT_DATA_CENTRE = "government_data_centre"


class BackendKind(enum.StrEnum):
    LOCAL = "local"
    SLURM = "slurm"
    RAY = "ray"
    AGENT = "agent"
    SIMULATED = "simulated"


class Phase(enum.StrEnum):
    PLANNED = "planned"
    BUILT = "built"
    OPERATIONAL = "operational"


class SecurityZone(enum.StrEnum):
    PUBLIC = "public"
    GOVERNMENT = "government"


class Provider(IdMixin, TimestampsMixin, RetiredMixin, Base):
    __tablename__ = "providers"

    code: Mapped[str] = mapped_column(String(64), unique=True)
    name: Mapped[str] = mapped_column(String(200))
    name_en: Mapped[str | None] = mapped_column(String(200))
    kind: Mapped[ProviderKind] = mapped_column(enum_column(ProviderKind, "provider_kind"))
    region: Mapped[str] = mapped_column(String(64), index=True)
    # Verified certifications, e.g. "MLPS-3" (等保三级); set by the regulator.
    certifications: Mapped[list[str]] = mapped_column(JSON, default=list)
    # Companies of one group: vouchers are refused between an affiliated buyer and seller.
    affiliation_group: Mapped[str | None] = mapped_column(String(100))

    sites: Mapped[list[Site]] = relationship(back_populates="provider")


class Site(IdMixin, TimestampsMixin, RetiredMixin, Base):
    __tablename__ = "sites"

    provider_id: Mapped[int] = mapped_column(ForeignKey("providers.id"), index=True)
    code: Mapped[str] = mapped_column(String(64), unique=True)
    name: Mapped[str] = mapped_column(String(200))
    name_en: Mapped[str | None] = mapped_column(String(200))
    region: Mapped[str] = mapped_column(String(64), index=True)
    backend_kind: Mapped[BackendKind] = mapped_column(enum_column(BackendKind, "backend_kind"))
    # How the controller reaches the cluster (e.g. slurmrestd URL, Ray address); private to its operator.
    connection: Mapped[dict[str, Any]] = mapped_column(JSON, default=dict)
    phase: Mapped[Phase] = mapped_column(enum_column(Phase, "site_phase"))
    # Dates of each phase: actual when past, expected when in the future.
    built_on: Mapped[date | None] = mapped_column()
    operational_on: Mapped[date | None] = mapped_column()

    provider: Mapped[Provider] = relationship(back_populates="sites")
    pools: Mapped[list[Pool]] = relationship(back_populates="site")


class Pool(IdMixin, TimestampsMixin, RetiredMixin, Base):
    __tablename__ = "pools"
    __table_args__ = (
        CheckConstraint("nodes > 0", name="nodes_positive"),
        CheckConstraint("cards_per_node > 0", name="cards_per_node_positive"),
    )

    site_id: Mapped[int] = mapped_column(ForeignKey("sites.id"), index=True)
    code: Mapped[str] = mapped_column(String(64), unique=True)
    name: Mapped[str] = mapped_column(String(200))
    accelerator: Mapped[str] = mapped_column(String(32), index=True)
    nodes: Mapped[int] = mapped_column()
    cards_per_node: Mapped[int] = mapped_column()
    security_zone: Mapped[SecurityZone] = mapped_column(enum_column(SecurityZone, "security_zone"))
    # Set by the controller from what the pool's backend answers: an unhealthy pool gets no new work.
    healthy: Mapped[bool] = mapped_column(default=True, server_default=true())
    unhealthy_since: Mapped[datetime | None] = mapped_column()
    health_message: Mapped[str | None] = mapped_column(String(500))

    site: Mapped[Site] = relationship(back_populates="pools")
    rate_cards: Mapped[list[RateCard]] = relationship(
        back_populates="pool", order_by="RateCard.effective_from"
    )

    @property
    def cards(self) -> int:
        return self.nodes * self.cards_per_node


class RateCard(IdMixin, Base):
    """A price per card-hour in force over [effective_from, effective_until); never edited once in force."""

    __tablename__ = "rate_cards"
    __table_args__ = (CheckConstraint("price_fen_per_card_hour > 0", name="price_positive"),)

    pool_id: Mapped[int] = mapped_column(ForeignKey("pools.id"), index=True)
    price_fen_per_card_hour: Mapped[int] = mapped_column(BigInteger)
    currency: Mapped[str] = mapped_column(String(3), default="CNY")
    effective_from: Mapped[datetime] = mapped_column()
    effective_until: Mapped[datetime | None] = mapped_column()
    created_at: Mapped[datetime] = mapped_column()
    retired_at: Mapped[datetime | None] = mapped_column()

    pool: Mapped[Pool] = relationship(back_populates="rate_cards")
