"""API shapes of the region reports (read only). Exact figures are integers (card-seconds, basis points);
card-hours and PFLOPS·h are exact decimals to 4 places (JSON strings); times are aware UTC."""

from __future__ import annotations

from datetime import datetime
from decimal import Decimal

from pydantic import BaseModel


class Window(BaseModel):
    start: datetime  # the request's `from`, in whole seconds
    end: datetime  # the request's `to` (excluded)
    period: str  # day | week | month (Asia/Shanghai calendar)


class PeriodRead(BaseModel):
    period: str  # "2025-06-01", "2025-W23" or "2025-06"
    start: datetime  # cut to the window
    end: datetime


# --- local share -------------------------------------------------------------------------------


class ComputeRead(BaseModel):
    card_seconds: int
    card_hours: Decimal
    pflops_hours: Decimal  # dense FP16/BF16, from the catalogue's TFLOPS per card


class ShareRead(BaseModel):
    classes: dict[str, ComputeRead]  # local_sme, local_other, outside: always all three
    total: ComputeRead
    local_card_seconds: int  # local_sme + local_other
    local_share_bp: int | None  # local ÷ total card-seconds in basis points, half up; null when no usage
    local_share: str  # "96.30%", or "—" when there was no usage


class SharePeriodRead(ShareRead, PeriodRead):
    pass


class LocalShareRead(BaseModel):
    window: Window
    region_division_code: str  # local = an organisation registered under this GB/T 2260 division
    periods: list[SharePeriodRead]
    total: ShareRead


# --- utilization -------------------------------------------------------------------------------


class UtilizationFigures(BaseModel):
    used_card_seconds: int
    available_card_seconds: int
    used_card_hours: Decimal
    available_card_hours: Decimal
    utilization_bp: int | None  # used ÷ available in basis points, half up; null when nothing was available
    utilization: str  # "4.69%", or "—"


class GroupUtilization(UtilizationFigures):
    group: str  # the provider's code, the pool's code, the site's region or the accelerator model


class UtilizationPeriodRead(PeriodRead):
    groups: list[GroupUtilization]
    total: UtilizationFigures


class UtilizationRead(BaseModel):
    window: Window
    group: str  # provider | pool | region | accelerator
    periods: list[UtilizationPeriodRead]
    groups: list[GroupUtilization]  # over the whole window
    total: UtilizationFigures


# --- queue and waiting times -------------------------------------------------------------------


class WaitStatsRead(BaseModel):
    jobs: int
    mean_wait_s: int | None
    p50_wait_s: int | None
    p90_wait_s: int | None
    max_wait_s: int | None


class WaitRowRead(BaseModel):
    classes: dict[str, WaitStatsRead]  # local_sme, local_other, outside
    everyone_else: WaitStatsRead  # local_other and outside together
    all: WaitStatsRead


class WaitPeriodRead(WaitRowRead, PeriodRead):
    pass


class WaitsRead(BaseModel):
    periods: list[WaitPeriodRead]
    total: WaitRowRead


class QueueStatsRead(BaseModel):
    jobs: int
    cards: int
    oldest_submitted_at: datetime | None
    oldest_wait_s: int | None


class QueueNowRead(BaseModel):
    at: datetime
    classes: dict[str, QueueStatsRead]
    everyone_else: QueueStatsRead
    all: QueueStatsRead


class QueueRead(BaseModel):
    window: Window
    waits: WaitsRead  # jobs that started in the window, by the period of their start
    queue: QueueNowRead  # jobs waiting for cards now
