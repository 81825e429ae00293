"""Nodes that node agents registered, the launches assigned to them, and the output they streamed."""

from __future__ import annotations

from datetime import datetime
from typing import Any

from sqlalchemy import JSON, ForeignKey, Integer, LargeBinary, String, Text, UniqueConstraint
from sqlalchemy.orm import Mapped, mapped_column

from suanwang.db.base import Base, IdMixin


class Node(IdMixin, Base):
    """One machine of a pool, as its agent described it; alive while it heartbeats."""

    __tablename__ = "nodes"
    __table_args__ = (UniqueConstraint("pool_id", "hostname"),)

    pool_id: Mapped[int] = mapped_column(ForeignKey("pools.id"), index=True)
    hostname: Mapped[str] = mapped_column(String(200))
    # [{index, uuid, model, memory_mib, mig_mode, driver_version}], as NVML reported them.
    cards: Mapped[list[dict[str, Any]]] = mapped_column(JSON, default=list)
    card_count: Mapped[int] = mapped_column(Integer, default=0)
    cpu_count: Mapped[int] = mapped_column(Integer, default=0)
    driver_version: Mapped[str | None] = mapped_column(String(64))
    agent_version: Mapped[str | None] = mapped_column(String(64))
    registered_at: Mapped[datetime] = mapped_column()
    last_heartbeat_at: Mapped[datetime] = mapped_column()
    # The last `suanwang agent calibrate` it reported: {"cards": [{index, model, dtype, n, median_tflops}]}.
    calibration: Mapped[dict[str, Any] | None] = mapped_column(JSON)
    calibrated_at: Mapped[datetime | None] = mapped_column()


class NodeLaunch(IdMixin, Base):
    """A launch the controller assigned to a node: what to run, on which cards, and what the agent
    reported back. Its `name` is the launch's name (jobs.launches.name), the backend handle."""

    __tablename__ = "node_launches"
    __table_args__ = (UniqueConstraint("name"),)

    name: Mapped[str] = mapped_column(String(64))
    node_id: Mapped[int] = mapped_column(ForeignKey("nodes.id"), index=True)
    command: Mapped[list[str]] = mapped_column(JSON)
    env: Mapped[dict[str, str]] = mapped_column(JSON, default=dict)
    workdir: Mapped[str | None] = mapped_column(String(1000))
    cards: Mapped[int] = mapped_column(Integer)
    card_indices: Mapped[list[int]] = mapped_column(JSON, default=list)
    time_limit_s: Mapped[int | None] = mapped_column(Integer)
    # pending (assigned, not started) → running → succeeded | failed | cancelled; lost: the node went silent.
    state: Mapped[str] = mapped_column(String(16), index=True)
    cancel_requested: Mapped[bool] = mapped_column(default=False)
    assigned_at: Mapped[datetime] = mapped_column()
    started_at: Mapped[datetime | None] = mapped_column()
    ended_at: Mapped[datetime | None] = mapped_column()
    exit_code: Mapped[int | None] = mapped_column()
    message: Mapped[str | None] = mapped_column(Text)
    log_bytes: Mapped[int] = mapped_column(Integer, default=0)


class NodeLogChunk(IdMixin, Base):
    """A piece of a launch's output, in order; `offset` makes a resent chunk harmless."""

    __tablename__ = "node_log_chunks"
    __table_args__ = (UniqueConstraint("launch_name", "offset"),)

    launch_name: Mapped[str] = mapped_column(String(64), index=True)
    offset: Mapped[int] = mapped_column(Integer)
    data: Mapped[bytes] = mapped_column(LargeBinary)
