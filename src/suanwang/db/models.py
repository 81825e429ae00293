"""Every table, imported in one place so Alembic and create_all see the whole schema."""

from suanwang.api.idempotency import IdempotencyRecord
from suanwang.audit.models import AuditEntry, AuditHead
from suanwang.db.meta import PlatformMeta
from suanwang.jobs.models import Job, JobEvent, Launch, Reservation
from suanwang.ledger.models import LedgerAccount, LedgerPendingExpiry, LedgerTransfer
from suanwang.metering.models import SeenEvent, UsageRecord
from suanwang.nodes.models import Node, NodeLaunch, NodeLogChunk
from suanwang.registry.models import Enterprise
from suanwang.supply.models import Pool, Provider, RateCard, Site
from suanwang.tenants.models import ApiToken, Organisation, User
from suanwang.vouchers.models import (
    VoucherApplication,
    VoucherAudit,
    VoucherFlag,
    VoucherGrant,
    VoucherProgramme,
    VoucherRedemption,
)

__all__ = [
    "ApiToken",
    "AuditEntry",
    "AuditHead",
    "Enterprise",
    "IdempotencyRecord",
    "Job",
    "JobEvent",
    "Launch",
    "LedgerAccount",
    "LedgerPendingExpiry",
    "LedgerTransfer",
    "Node",
    "NodeLaunch",
    "NodeLogChunk",
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
    "VoucherApplication",
    "VoucherAudit",
    "VoucherFlag",
    "VoucherGrant",
    "VoucherProgramme",
    "VoucherRedemption",
]
