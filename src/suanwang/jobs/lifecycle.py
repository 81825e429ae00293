"""The job lifecycle as an explicit state machine (pure: no I/O, no clock).

    submitted ─► queued ─► placed ─► running ─► succeeded | failed | cancelled
        │          │  ▲       │  │      │  │
        ▼          │  └───────┼──┼──────┼──┴─ preempted, lost: back to queued (attempt + 1, backoff)
    rejected       ▼          ▼  ▼      ▼
               cancelled   (placed may also end failed / cancelled before it ever ran)

`rejected` is admission's refusal after submit (e.g. no pool can ever run it any more); bad input at
submit is refused before anything is stored and never becomes a job. A transition not in the table
raises `IllegalTransition`; callers record every legal one with its time and cause.
"""

from __future__ import annotations

import enum
from dataclasses import dataclass


class JobState(enum.StrEnum):
    SUBMITTED = "submitted"
    QUEUED = "queued"
    PLACED = "placed"  # a backend launch is recorded (and being sent or sent); not running yet
    RUNNING = "running"
    SUCCEEDED = "succeeded"
    FAILED = "failed"
    CANCELLED = "cancelled"
    PREEMPTED = "preempted"  # passing state: the scheduler took its cards back; requeued next
    LOST = "lost"  # passing state: its backend stopped answering or forgot it; requeued next
    REJECTED = "rejected"

    @property
    def terminal(self) -> bool:
        return self in TERMINAL

    @property
    def active(self) -> bool:
        """Holds (or is about to hold) cards on a backend."""
        return self in (JobState.PLACED, JobState.RUNNING)


TERMINAL = frozenset({JobState.SUCCEEDED, JobState.FAILED, JobState.CANCELLED, JobState.REJECTED})

_S = JobState
ALLOWED: dict[JobState, frozenset[JobState]] = {
    _S.SUBMITTED: frozenset({_S.QUEUED, _S.REJECTED, _S.CANCELLED}),
    _S.QUEUED: frozenset({_S.PLACED, _S.CANCELLED, _S.REJECTED}),
    _S.PLACED: frozenset({_S.RUNNING, _S.FAILED, _S.CANCELLED, _S.LOST, _S.PREEMPTED}),
    _S.RUNNING: frozenset({_S.SUCCEEDED, _S.FAILED, _S.CANCELLED, _S.LOST, _S.PREEMPTED}),
    _S.PREEMPTED: frozenset({_S.QUEUED, _S.CANCELLED}),
    # Lost work that used up its attempts fails instead of going round again.
    _S.LOST: frozenset({_S.QUEUED, _S.FAILED, _S.CANCELLED}),
    _S.SUCCEEDED: frozenset(),
    _S.FAILED: frozenset(),
    _S.CANCELLED: frozenset(),
    _S.REJECTED: frozenset(),
}


class IllegalTransition(ValueError):
    def __init__(self, current: JobState, target: JobState) -> None:
        self.current = current
        self.target = target
        super().__init__(f"a job cannot go from {current.value} to {target.value}")


def check(current: JobState, target: JobState) -> JobState:
    """Return `target` if the lifecycle allows current → target; raise IllegalTransition otherwise."""
    if target not in ALLOWED[current]:
        raise IllegalTransition(current, target)
    return target


@dataclass(frozen=True, slots=True)
class Retry:
    """What happens to preempted or lost work: when it may be placed again, or that it has failed."""

    attempt: int
    delay_s: float
    give_up: bool


def retry_after(attempt: int, *, base_s: float = 5.0, cap_s: float = 600.0, max_attempts: int = 5) -> Retry:
    """Exponential backoff for lost work: base·2^(attempt-1), capped; after max_attempts it fails.

    `attempt` is the attempt that was just lost (1 for the first launch). Preemption is not the job's
    fault and does not count towards max_attempts (the caller passes give_up=False for it).
    """
    if attempt < 1:
        raise ValueError("attempt counts from 1")
    # Past 2^64 the power overflows a float, and the cap was reached long before.
    delay = cap_s if attempt > 64 else min(cap_s, base_s * 2 ** (attempt - 1))
    return Retry(attempt=attempt + 1, delay_s=delay, give_up=attempt >= max_attempts)
