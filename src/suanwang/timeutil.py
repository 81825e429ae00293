"""Time is timezone-aware UTC everywhere; shown in Asia/Shanghai."""

from __future__ import annotations

from datetime import UTC, date, datetime
from zoneinfo import ZoneInfo

SHANGHAI = ZoneInfo("Asia/Shanghai")


def utcnow() -> datetime:
    return datetime.now(UTC)


def require_aware(value: datetime, *, name: str = "time") -> datetime:
    """Return value in UTC; a naive datetime is a programming error, never guessed at."""
    if value.tzinfo is None or value.utcoffset() is None:
        raise ValueError(f"{name} must be timezone-aware (got naive {value.isoformat()})")
    return value.astimezone(UTC)


def shanghai_date(at: datetime) -> date:
    """The calendar day in Asia/Shanghai (dates of grants, tiers and projects are the region's days)."""
    return at.astimezone(SHANGHAI).date()
