"""Fair share with decaying usage (Slurm's classic factor, Kueue's admission fair sharing in spirit)."""

from __future__ import annotations

import math
from collections.abc import Iterable

from suanwang.scheduler.types import TenantState


def decay(usage: float, elapsed_s: float, half_life_s: float) -> float:
    """Usage after `elapsed_s` of exponential decay with the given half-life."""
    if half_life_s <= 0:
        return 0.0
    return usage * math.pow(0.5, max(elapsed_s, 0.0) / half_life_s)


def factors(tenants: Iterable[TenantState]) -> dict[str, float]:
    """Fair-share factor in (0, 1] per tenant: 2^(-usage_share / weight_share).

    1.0 for a tenant that used nothing; 0.5 for one that used exactly its share; towards 0 above it.
    """
    tenants = list(tenants)
    total_usage = sum(t.usage_card_s for t in tenants)
    total_weight = sum(t.weight for t in tenants) or 1.0
    result = {}
    for tenant in tenants:
        share = tenant.weight / total_weight if tenant.weight > 0 else 1e-9
        used = tenant.usage_card_s / total_usage if total_usage > 0 else 0.0
        result[tenant.id] = math.pow(2.0, -used / share)
    return result
