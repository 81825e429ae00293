"""Tables of the tenants slice: organisations, users and their API tokens."""

from __future__ import annotations

import enum
from datetime import datetime

from sqlalchemy import ForeignKey, String
from sqlalchemy.orm import Mapped, mapped_column, relationship

from suanwang.db.base import Base, IdMixin, RetiredMixin, TimestampsMixin, enum_column


class OrgKind(enum.StrEnum):
    ENTERPRISE = "enterprise"
    GOVERNMENT_UNIT = "government_unit"
    RESEARCH_INSTITUTE = "research_institute"
    UNIVERSITY = "university"


class Role(enum.StrEnum):
    REGULATOR = "regulator"
    PROVIDER_OPERATOR = "provider_operator"
    TENANT_ADMIN = "tenant_admin"
    TENANT_MEMBER = "tenant_member"


class Organisation(IdMixin, TimestampsMixin, RetiredMixin, Base):
    __tablename__ = "organisations"

    credit_code: Mapped[str] = mapped_column(String(18), unique=True)
    name: Mapped[str] = mapped_column(String(200))
    name_en: Mapped[str | None] = mapped_column(String(200))
    kind: Mapped[OrgKind] = mapped_column(enum_column(OrgKind, "org_kind"))
    # Registered locality: GB/T 2260 division code (defaults to the one inside the credit code) and name.
    locality_code: Mapped[str] = mapped_column(String(6))
    locality_name: Mapped[str | None] = mapped_column(String(100))
    is_sme: Mapped[bool] = mapped_column(default=False)
    contact_email: Mapped[str | None] = mapped_column(String(200))
    # Companies of one group: vouchers are refused between an affiliated buyer and seller (set by the
    # regulator, like the provider's).
    affiliation_group: Mapped[str | None] = mapped_column(String(100))


class User(IdMixin, TimestampsMixin, RetiredMixin, Base):
    __tablename__ = "users"

    name: Mapped[str] = mapped_column(String(100), unique=True)
    display_name: Mapped[str | None] = mapped_column(String(200))
    email: Mapped[str | None] = mapped_column(String(200))
    role: Mapped[Role] = mapped_column(enum_column(Role, "user_role"))
    org_id: Mapped[int | None] = mapped_column(ForeignKey("organisations.id"), index=True)
    provider_id: Mapped[int | None] = mapped_column(ForeignKey("providers.id"), index=True)

    tokens: Mapped[list[ApiToken]] = relationship(back_populates="user")


class ApiToken(IdMixin, Base):
    __tablename__ = "api_tokens"

    user_id: Mapped[int] = mapped_column(ForeignKey("users.id"), index=True)
    name: Mapped[str] = mapped_column(String(100))
    # The secret is shown once; only its SHA-256 is kept (tokens are 256-bit random, so no slow hash needed).
    token_hash: Mapped[str] = mapped_column(String(64), unique=True)
    prefix: Mapped[str] = mapped_column(String(12))
    created_at: Mapped[datetime] = mapped_column()
    expires_at: Mapped[datetime | None] = mapped_column()
    last_used_at: Mapped[datetime | None] = mapped_column()
    revoked_at: Mapped[datetime | None] = mapped_column()

    user: Mapped[User] = relationship(back_populates="tokens")
