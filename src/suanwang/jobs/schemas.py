"""API shapes of the jobs slice: submit, quote, read, history, logs and reservations."""

from __future__ import annotations

import enum
from datetime import datetime
from typing import Annotated, Any

from pydantic import (
    BaseModel,
    ConfigDict,
    Field,
    StrictBool,
    StrictInt,
    StringConstraints,
    field_validator,
    model_validator,
)

from suanwang.fields import Code, Id, Name, ShortName, Strict, UtcDatetime
from suanwang.jobs.lifecycle import JobState
from suanwang.scheduler.types import Classification

# argv items and environment values: any text but NUL (no OS accepts NUL in them).
Arg = Annotated[str, StringConstraints(max_length=10_000, pattern=r"^[^\x00]*$")]
EnvName = Annotated[str, StringConstraints(pattern=r"^[A-Za-z_][A-Za-z0-9_]{0,127}$")]
Accelerator = Annotated[str, StringConstraints(strip_whitespace=True, min_length=1, max_length=32)]
Workdir = Annotated[str, StringConstraints(min_length=1, max_length=1000, pattern=r"^[^\x00]*$")]
MAX_DURATION_S = 90 * 86_400  # a quarter: longer work should checkpoint and resubmit


class PriorityClass(enum.StrEnum):
    """Priority classes (Kueue's WorkloadPriorityClass, Slurm's QOS): names users pick, numbers the
    scheduler compares. `urgent` is for government units and the regulator (emergencies)."""

    LOW = "low"
    NORMAL = "normal"
    HIGH = "high"
    URGENT = "urgent"

    @property
    def value_int(self) -> int:
        return {"low": -10, "normal": 0, "high": 10, "urgent": 100}[self.value]

    @classmethod
    def of(cls, priority: int) -> PriorityClass:
        for member in cls:
            if member.value_int == priority:
                return member
        return cls.NORMAL


class JobSpec(Strict):
    """What to run and what it needs: the body of both quote and submit."""

    name: Name | None = None
    command: list[Arg] = Field(min_length=1, max_length=1000)
    env: dict[EnvName, Arg] = Field(default_factory=dict, max_length=200)
    workdir: Workdir | None = None
    cards: Annotated[StrictInt, Field(ge=0, le=100_000)] = 1
    cards_per_node: Annotated[StrictInt, Field(ge=1, le=1024)] | None = None
    accelerators: list[Accelerator] = Field(default_factory=list, max_length=32)
    min_memory_gib: Annotated[StrictInt, Field(ge=0, le=100_000)] = 0
    duration_estimate_s: Annotated[StrictInt, Field(gt=0, le=MAX_DURATION_S)] = 3600
    deadline: UtcDatetime | None = None
    max_price_fen_per_card_hour: Annotated[StrictInt, Field(gt=0, le=10_000_000)] | None = None
    classification: Classification = Classification.PUBLIC
    regions: list[Code] = Field(default_factory=list, max_length=64)
    priority: PriorityClass = PriorityClass.NORMAL
    preemptible: StrictBool = False
    job_type: ShortName | None = None  # jobs.job_type is 100 characters
    # The regulator submits on behalf of an organisation; tenants always submit for their own.
    org_id: Id | None = None

    @model_validator(mode="after")
    def _command_names_a_program(self) -> JobSpec:
        if not self.command[0].strip():
            raise ValueError("command[0] must name the program to run")
        return self


class JobCreate(JobSpec):
    pass


class QuoteRow(BaseModel):
    pool_id: int
    pool_code: str
    provider: str
    region: str
    accelerator: str
    zone: str
    price_fen_per_card_hour: int
    start_at: datetime
    runtime_s: int
    end_at: datetime
    cost_fen: int
    meets_deadline: bool | None
    starts_now: bool
    reserved: bool = False  # on cards the tenant reserved


class QuoteRead(BaseModel):
    rows: list[QuoteRow]
    note: str | None = None  # why nothing can run it, in the reader's language


class JobEventRead(BaseModel):
    model_config = ConfigDict(from_attributes=True)

    at: datetime
    from_state: JobState | None
    to_state: JobState
    attempt: int
    cause: str
    detail: dict[str, Any]
    text: str | None = None


class JobRead(BaseModel):
    model_config = ConfigDict(from_attributes=True)

    id: int
    org_id: int
    submitted_by: int
    name: str | None
    command: list[str]
    env: dict[str, str]
    workdir: str | None
    cards: int
    cards_per_node: int | None
    accelerators: list[str]
    min_memory_gib: int
    duration_estimate_s: int
    deadline: datetime | None
    max_price_fen_per_card_hour: int | None
    classification: Classification
    regions: list[str]
    priority: PriorityClass
    preemptible: bool
    job_type: str | None
    state: JobState
    attempt: int
    pool_id: int | None
    reason: str | None = None
    reason_code: str | None
    not_before: datetime | None
    cancel_requested_at: datetime | None
    submitted_at: datetime
    started_at: datetime | None
    ended_at: datetime | None
    exit_code: int | None
    card_seconds: int
    est_cost_fen: int | None
    hold_fen: int | None = Field(description="the maximum cost held on the wallet at admission")
    charged_fen: int | None = Field(description="what the job was charged when it ended")
    created_at: datetime
    updated_at: datetime

    @field_validator("priority", mode="before")
    @classmethod
    def _priority_class(cls, value: Any) -> Any:
        return PriorityClass.of(value) if isinstance(value, int) else value


class ReservationCreate(Strict):
    pool_id: Id
    cards: Annotated[StrictInt, Field(gt=0, le=100_000)]
    starts_at: UtcDatetime
    ends_at: UtcDatetime
    org_id: Id | None = None  # the regulator reserves on behalf of an organisation

    @model_validator(mode="after")
    def _window(self) -> ReservationCreate:
        if self.ends_at <= self.starts_at:
            raise ValueError("ends_at must be after starts_at")
        return self


class ReservationRead(BaseModel):
    model_config = ConfigDict(from_attributes=True)

    id: int
    org_id: int
    pool_id: int
    cards: int
    starts_at: datetime
    ends_at: datetime
    created_by: int
    cancelled_at: datetime | None
    created_at: datetime
