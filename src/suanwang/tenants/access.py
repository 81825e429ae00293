"""Who is calling, and what they may see: one place for the scoping every slice applies.

Scoping rules (the same for API, CLI and web):
- regulator: everything.
- provider operator: its own provider's objects, including private settings; the market's public
  offering (providers, sites, pools, prices, capacity) is readable by every signed-in user.
- tenant admin / member: only its own organisation; other organisations do not exist for it (404).
"""

from __future__ import annotations

from dataclasses import dataclass

from suanwang.errors import Forbidden
from suanwang.tenants.models import Role


@dataclass(frozen=True, slots=True)
class Principal:
    user_id: int
    name: str
    role: Role
    org_id: int | None = None
    provider_id: int | None = None
    token_id: int | None = None

    @property
    def is_regulator(self) -> bool:
        return self.role is Role.REGULATOR

    @property
    def is_tenant(self) -> bool:
        return self.role in (Role.TENANT_ADMIN, Role.TENANT_MEMBER)

    def operates(self, provider_id: int | None) -> bool:
        """True for the regulator and for an operator of that provider."""
        return self.is_regulator or (
            self.role is Role.PROVIDER_OPERATOR
            and provider_id is not None
            and self.provider_id == provider_id
        )

    def belongs_to(self, org_id: int | None) -> bool:
        """True for the regulator and for a member of that organisation."""
        return self.is_regulator or (self.is_tenant and org_id is not None and self.org_id == org_id)


def require_role(principal: Principal, *roles: Role) -> None:
    if principal.role not in roles:
        raise Forbidden(
            "access.role-required", roles=", ".join(r.value for r in roles), role=principal.role.value
        )


def require_regulator(principal: Principal) -> None:
    require_role(principal, Role.REGULATOR)


def require_operates(principal: Principal, provider_id: int) -> None:
    if not principal.operates(provider_id):
        raise Forbidden("access.not-your-provider")
