"""API shapes of the tenants slice: one per use (Create, Update, Read)."""

from __future__ import annotations

from datetime import datetime
from typing import Annotated

from pydantic import BaseModel, ConfigDict, Field, StringConstraints

from suanwang.fields import Division, Email, Id, Login, Name, Patch, ShortName, Strict, UtcDatetime
from suanwang.tenants.models import OrgKind, Role


class OrgCreate(Strict):
    credit_code: Annotated[str, StringConstraints(strip_whitespace=True, max_length=40)]
    name: Name
    name_en: Name | None = None
    kind: OrgKind
    locality_code: Division | None = Field(
        default=None, description="GB/T 2260 division code; defaults to the one inside the credit code"
    )
    locality_name: ShortName | None = None
    is_sme: bool = False
    contact_email: Email | None = None
    affiliation_group: ShortName | None = Field(
        default=None, description="Group of affiliated companies (vouchers refuse affiliated trades)"
    )


class OrgUpdate(Patch):
    nullable = frozenset({"name_en", "locality_name", "contact_email", "affiliation_group"})

    name: Name | None = None
    name_en: Name | None = None
    kind: OrgKind | None = None
    locality_code: Division | None = None
    locality_name: ShortName | None = None
    is_sme: bool | None = None
    contact_email: Email | None = None
    affiliation_group: ShortName | None = None


class OrgRead(BaseModel):
    model_config = ConfigDict(from_attributes=True)

    id: int
    credit_code: str
    name: str
    name_en: str | None
    kind: OrgKind
    locality_code: str
    locality_name: str | None
    is_local: bool
    is_sme: bool
    contact_email: str | None
    affiliation_group: str | None
    created_at: datetime
    updated_at: datetime
    retired_at: datetime | None


class UserCreate(Strict):
    name: Login
    display_name: Name | None = None
    email: Email | None = None
    role: Role
    org_id: Id | None = None
    provider_id: Id | None = None


class UserUpdate(Patch):
    nullable = frozenset({"display_name", "email"})

    display_name: Name | None = None
    email: Email | None = None
    role: Role | None = None


class UserRead(BaseModel):
    model_config = ConfigDict(from_attributes=True)

    id: int
    name: str
    display_name: str | None
    email: str | None
    role: Role
    org_id: int | None
    provider_id: int | None
    created_at: datetime
    retired_at: datetime | None


class TokenCreate(Strict):
    name: ShortName
    user_id: Id | None = Field(default=None, description="whose token; defaults to the caller")
    expires_at: UtcDatetime | None = None


class TokenRead(BaseModel):
    model_config = ConfigDict(from_attributes=True)

    id: int
    user_id: int
    name: str
    prefix: str
    created_at: datetime
    expires_at: datetime | None
    last_used_at: datetime | None
    revoked_at: datetime | None


class TokenCreated(TokenRead):
    token: str = Field(description="the secret: shown once, store it now")


class WhoAmI(BaseModel):
    user_id: int
    name: str
    role: Role
    org_id: int | None
    provider_id: int | None
