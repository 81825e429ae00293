"""Every table, imported in one place so Alembic and create_all see the whole schema."""

from suanwang.api.idempotency import IdempotencyRecord
from suanwang.supply.models import Pool, Provider, RateCard, Site
from suanwang.tenants.models import ApiToken, Organisation, User

__all__ = ["ApiToken", "IdempotencyRecord", "Organisation", "Pool", "Provider", "RateCard", "Site", "User"]
