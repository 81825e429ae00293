"""The scheduler: a pure core `schedule(snapshot, policy) -> decisions` (no I/O, no clock).

What the simulator replays is exactly what the controller runs.
"""

from suanwang.scheduler.core import Option, quote, schedule
from suanwang.scheduler.explain import explain
from suanwang.scheduler.policy import Algorithm, Policy
from suanwang.scheduler.types import (
    Classification,
    Decisions,
    Place,
    PoolState,
    Preempt,
    QueuedJob,
    Reason,
    RunningJob,
    Snapshot,
    TenantState,
    Wait,
    Zone,
)

__all__ = [
    "Algorithm",
    "Classification",
    "Decisions",
    "Option",
    "Place",
    "Policy",
    "PoolState",
    "Preempt",
    "QueuedJob",
    "Reason",
    "RunningJob",
    "Snapshot",
    "TenantState",
    "Wait",
    "Zone",
    "explain",
    "quote",
    "schedule",
]
