"""API shapes of metering: usage CloudEvents in, ingestion results and usage records out."""

from __future__ import annotations

from datetime import datetime
from typing import Annotated, Any, Literal

from pydantic import BaseModel, ConfigDict, Field, StrictInt, StringConstraints

from suanwang.fields import ExternalId, Strict, UtcDatetime

EVENT_TYPE = "cn.suanwang.usage.v1"
SPEC_VERSION = "1.0"
MAX_CARD_SECONDS = 2**63 - 1  # BIGINT

LaunchName = Annotated[str, StringConstraints(min_length=1, max_length=64)]
Status = Literal["recorded", "duplicate", "already-metered"]


class AgentMeasurements(Strict):
    """What a node agent measured on the job's cards beyond card-seconds (each may be unknown)."""

    mean_utilization_pct: Annotated[float, Field(ge=0, le=100)] | None = None
    peak_utilization_pct: Annotated[StrictInt, Field(ge=0, le=100)] | None = None
    peak_memory_mib: Annotated[StrictInt, Field(ge=0)] | None = None
    energy_j: Annotated[StrictInt, Field(ge=0)] | None = None  # from the cards' total-energy counters
    cpu_seconds: Annotated[StrictInt, Field(ge=0)] | None = None


class UsageData(Strict):
    """What ran: a launch's cards from start to end. Unknown fields are refused (a misspelt
    `card_seconds` must not silently become cards × seconds)."""

    launch: LaunchName  # Launch.name, the name the backend was given (e.g. "sw-42-1")
    started_at: UtcDatetime
    ended_at: UtcDatetime
    cards: Annotated[StrictInt, Field(ge=0, le=100_000)]
    card_seconds: Annotated[StrictInt, Field(ge=0, le=MAX_CARD_SECONDS)] | None = None
    external_id: ExternalId | None = None
    agent: AgentMeasurements | None = None


class UsageEvent(BaseModel):
    """One CloudEvents 1.0 event (JSON format) of type cn.suanwang.usage.v1.

    Extension attributes are ignored, as CloudEvents asks of consumers that do not know them.
    """

    model_config = ConfigDict(extra="ignore")

    specversion: Literal["1.0"]
    id: ExternalId
    source: ExternalId
    type: Literal["cn.suanwang.usage.v1"]
    time: UtcDatetime | None = None
    subject: Annotated[str, StringConstraints(max_length=200)] | None = None
    datacontenttype: Literal["application/json"] | None = None
    data: UsageData


class EventResult(BaseModel):
    index: int
    source: str
    id: str
    status: Status
    usage_id: int | None  # the usage record of the event's launch


class IngestRead(BaseModel):
    recorded: int
    duplicate: int
    already_metered: int
    results: list[EventResult]


class UsageRead(BaseModel):
    model_config = ConfigDict(from_attributes=True)

    id: int
    job_id: int
    org_id: int
    pool_id: int
    cards: int
    started_at: datetime
    ended_at: datetime
    card_seconds: int
    source: str
    external_id: str | None
    measured: dict[str, Any] | None = None  # a node agent's utilization, memory, energy, CPU time
    recorded_at: datetime
