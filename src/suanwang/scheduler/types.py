"""Snapshot and decision types of the scheduler (pure data: frozen, no I/O, no clock).

Times are seconds on one clock chosen by the caller (the controller uses Unix seconds, the simulator
seconds since the trace began); `Snapshot.now_s` is "now". Ids are strings so the same core serves
database rows and simulated scenarios.
"""

from __future__ import annotations

import enum
from dataclasses import dataclass, field


class Zone(enum.StrEnum):
    PUBLIC = "public"
    GOVERNMENT = "government"


class Classification(enum.StrEnum):
    PUBLIC = "public"
    INTERNAL = "internal"
    GOVERNMENT = "government"


@dataclass(frozen=True, slots=True)
class PoolState:
    id: str
    provider: str
    site: str
    region: str
    zone: Zone
    accelerator: str  # catalogue model, upper case
    cards_total: int
    cards_free: int
    cards_per_node: int
    price_fen_per_card_hour: int
    healthy: bool = True
    # Local capacity: part of it is guaranteed to local SMEs (policy.sme_guaranteed_share).
    local: bool = False
    memory_gib: int = 0
    # Reserved capacity: only these tenants' jobs may use the pool (empty: everyone).
    tenants: frozenset[str] = frozenset()
    # Its cards' measured speed against their datasheet ratio (estimate.throughput_factors); 1: as the
    # datasheet says, or not calibrated.
    throughput: float = 1.0


@dataclass(frozen=True, slots=True)
class QueuedJob:
    id: str
    tenant: str
    cards: int  # 0: CPU-only work
    duration_s: float  # estimate on the reference accelerator
    submit_s: float
    # Gang layout: at most this many cards of the job on one node (None: the pool's node size).
    cards_per_node: int | None = None
    accelerators: frozenset[str] = frozenset()  # allowed models; empty = any
    min_memory_gib: int = 0
    deadline_s: float | None = None
    max_price_fen_per_card_hour: int | None = None
    classification: Classification = Classification.PUBLIC
    regions: frozenset[str] = frozenset()  # allowed regions; empty = any
    priority: int = 0  # priority class: higher goes first
    preemptible: bool = False
    job_type: str | None = None
    attempt: int = 0


@dataclass(frozen=True, slots=True)
class RunningJob:
    id: str
    tenant: str
    pool_id: str
    cards: int
    start_s: float
    expected_end_s: float
    priority: int = 0
    preemptible: bool = False
    # Started on local capacity beyond what non-SME work may hold: reclaimable by local SME work.
    borrowing: bool = False


@dataclass(frozen=True, slots=True)
class TenantState:
    id: str
    weight: float = 1.0
    local: bool = False
    sme: bool = False
    kind: str = "enterprise"  # enterprise | government | research | university
    usage_card_s: float = 0.0  # decayed usage (fair share), maintained by the caller

    @property
    def local_sme(self) -> bool:
        return self.local and self.sme


@dataclass(frozen=True, slots=True)
class Snapshot:
    now_s: float
    pools: tuple[PoolState, ...]
    queued: tuple[QueuedJob, ...]
    running: tuple[RunningJob, ...] = ()
    tenants: tuple[TenantState, ...] = ()


@dataclass(frozen=True, slots=True)
class Reason:
    """Why a job waits (or was preempted): a message key and its parameters, rendered by the caller."""

    code: str
    params: tuple[tuple[str, object], ...] = ()

    def text(self) -> str:
        """English text (the edges translate through suanwang.i18n with key 'sched.<code>')."""
        from suanwang.i18n import t

        return t(f"sched.{self.code}", "en", **dict(self.params))


@dataclass(frozen=True, slots=True)
class Place:
    job_id: str
    pool_id: str
    cards: int
    est_runtime_s: float
    est_cost_fen: int
    est_end_s: float
    borrowing: bool = False


@dataclass(frozen=True, slots=True)
class Preempt:
    job_id: str
    reason: Reason


@dataclass(frozen=True, slots=True)
class Wait:
    job_id: str
    reason: Reason


@dataclass(frozen=True, slots=True)
class Decisions:
    places: tuple[Place, ...] = ()
    preempts: tuple[Preempt, ...] = ()
    waits: tuple[Wait, ...] = ()
    # Diagnostics for the simulator and the explain view.
    stats: dict[str, float] = field(default_factory=dict)
