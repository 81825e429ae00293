"""Every table, imported in one place so Alembic and create_all see the whole schema."""

from suanwang.api.idempotency import IdempotencyRecord
from suanwang.db.meta import PlatformMeta
from suanwang.jobs.models import Job, JobEvent, Launch, Reservation
from suanwang.ledger.models import LedgerAccount, LedgerPendingExpiry, LedgerTransfer
from suanwang.metering.models import SeenEvent, UsageRecord
from suanwang.supply.models import Pool, Provider, RateCard, Site
from suanwang.tenants.models import ApiToken, Organisation, User

__all__ = [
    "ApiToken",
    "IdempotencyRecord",
    "Job",
    "JobEvent",
    "Launch",
    "LedgerAccount",
    "LedgerPendingExpiry",
    "LedgerTransfer",
    "Organisation",
    "PlatformMeta",
    "Pool",
    "Provider",
    "RateCard",
    "Reservation",
    "SeenEvent",
    "Site",
    "UsageRecord",
    "User",
]
