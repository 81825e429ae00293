"""API shapes of node agents: registration, heartbeats (state reports in, assignments out)."""

from __future__ import annotations

from datetime import datetime
from typing import Annotated, Any, Literal

from pydantic import BaseModel, ConfigDict, Field, StrictInt, StringConstraints

from suanwang.fields import Id, Strict, UtcDatetime

Text64 = Annotated[str, StringConstraints(min_length=1, max_length=64)]
Text200 = Annotated[str, StringConstraints(min_length=1, max_length=200)]


class CardIn(Strict):
    index: Annotated[StrictInt, Field(ge=0, le=1023)]
    uuid: Text200
    model: Text200  # the catalogue's model where the agent could map it (H100-SXM), else NVML's name
    memory_mib: Annotated[StrictInt, Field(ge=0)]
    mig_mode: bool | None = None
    driver_version: Text64 | None = None


class NodeRegister(Strict):
    pool_id: Id
    hostname: Text200
    cards: list[CardIn] = Field(default_factory=list, max_length=64)
    cpu_count: Annotated[StrictInt, Field(ge=0, le=65_536)] = 0
    agent_version: Text64 | None = None


class NodeRead(BaseModel):
    model_config = ConfigDict(from_attributes=True)

    id: int
    pool_id: int
    hostname: str
    card_count: int
    cpu_count: int
    cards: list[dict[str, Any]]
    driver_version: str | None
    agent_version: str | None
    registered_at: datetime
    last_heartbeat_at: datetime
    calibration: dict[str, Any] | None = None
    calibrated_at: datetime | None = None
    alive: bool = False
    heartbeat_s: float = 0.0  # how often the agent should call /heartbeat


class CardCalibration(Strict):
    index: Annotated[StrictInt, Field(ge=0, le=1023)] | None  # None: the CPU of a node without cards
    model: Text200
    dtype: Text64
    n: Annotated[StrictInt, Field(ge=1)]
    median_tflops: Annotated[float, Field(gt=0, le=100_000)]


class Calibration(Strict):
    cards: list[CardCalibration] = Field(min_length=1, max_length=64)


class LaunchReport(Strict):
    name: Text64
    state: Literal["running", "succeeded", "failed", "cancelled"]
    started_at: UtcDatetime | None = None
    ended_at: UtcDatetime | None = None
    exit_code: StrictInt | None = None
    message: Annotated[str, StringConstraints(max_length=2000)] | None = None


class Heartbeat(Strict):
    reports: list[LaunchReport] = Field(default_factory=list, max_length=1000)


class Assignment(BaseModel):
    """A launch to start: its command, environment and the card indices it may use."""

    name: str
    command: list[str]
    env: dict[str, str]
    workdir: str | None
    cards: int
    card_indices: list[int]
    time_limit_s: int | None


class HeartbeatRead(BaseModel):
    start: list[Assignment]
    cancel: list[str]  # names to stop: cancelled, preempted, or given up on while the node was silent
    heartbeat_s: float
