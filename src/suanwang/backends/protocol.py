"""The one protocol every execution backend speaks: local processes, Slurm, Ray, simulated.

The controller talks to backends only through this protocol. Every launch carries the platform's job
id and attempt in its `name` ("sw<instance>-<job id>-<attempt>"), and the backend stores that name where its
cluster shows it (Slurm job name, Ray submission id, the local process registry), so that after a
crash the controller can `find()` a job it may already have sent instead of sending it twice.

Errors: a backend that cannot be reached raises `BackendUnavailable` (the controller marks its pool
unhealthy); a request the backend refuses raises `BackendRejected` (the attempt fails with that text).
"""

from __future__ import annotations

import enum
from collections.abc import Mapping, Sequence
from dataclasses import dataclass, field
from datetime import datetime
from typing import Protocol, runtime_checkable


class BackendError(Exception):
    """Base of what a backend raises."""


class BackendUnavailable(BackendError):
    """The backend did not answer (daemon down, timeout, connection refused)."""


class BackendRejected(BackendError):
    """The backend answered and refused the request (bad script, unknown partition, too many cards)."""


class RemoteState(enum.StrEnum):
    PENDING = "pending"  # accepted, not started yet
    RUNNING = "running"
    SUCCEEDED = "succeeded"  # exited 0
    FAILED = "failed"  # exited non-zero, killed, or the node failed it
    CANCELLED = "cancelled"  # stopped by cancel()
    LOST = "lost"  # the backend no longer knows the job (purged, node gone)

    @property
    def terminal(self) -> bool:
        return self in (RemoteState.SUCCEEDED, RemoteState.FAILED, RemoteState.CANCELLED, RemoteState.LOST)


def launch_name(job_id: int, attempt: int, prefix: str = "sw") -> str:
    """The name a launch carries into the backend: the platform instance, job id and attempt.

    The prefix tells platform instances apart ("sw" + the database's instance id): a cluster keeps
    old jobs' names, and a reinstalled platform whose job ids start again at 1 must not mistake
    those for its own.
    """
    return f"{prefix}-{job_id}-{attempt}"


@dataclass(frozen=True, slots=True)
class LaunchSpec:
    job_id: int
    attempt: int
    command: tuple[str, ...]  # argv; command[0] is the program
    cards: int  # 0: CPU only
    env: Mapping[str, str] = field(default_factory=dict)
    workdir: str | None = None
    cards_per_node: int | None = None  # None: all cards on one node
    time_limit_s: int | None = None  # the backend kills the job after this (None: no limit)
    # The scheduler's runtime estimate on this pool: what the simulated backend "runs" for.
    est_runtime_s: float | None = None
    prefix: str = "sw"

    @property
    def name(self) -> str:
        return launch_name(self.job_id, self.attempt, self.prefix)

    @property
    def nodes(self) -> int:
        if self.cards == 0 or not self.cards_per_node:
            return 1
        return -(-self.cards // self.cards_per_node)


@dataclass(frozen=True, slots=True)
class Observation:
    """What the backend says about one launch. Times are aware UTC, as the backend recorded them."""

    handle: str
    state: RemoteState
    started_at: datetime | None = None
    ended_at: datetime | None = None
    exit_code: int | None = None
    cards: int = 0
    message: str | None = None

    @property
    def card_seconds(self) -> int | None:
        """Cards × wall seconds between start and end; None until the launch has both."""
        if self.started_at is None or self.ended_at is None:
            return None
        seconds = max(0.0, (self.ended_at - self.started_at).total_seconds())
        return round(self.cards * seconds)


@dataclass(frozen=True, slots=True)
class Capacity:
    cards_total: int
    cards_free: int
    healthy: bool = True


@runtime_checkable
class Backend(Protocol):
    kind: str

    def capacity(self) -> Capacity:
        """Cards this backend has and has free now."""
        ...

    def submit(self, spec: LaunchSpec) -> str:
        """Start the launch; return the backend's handle for it (Slurm job id, Ray submission id, ...)."""
        ...

    def find(self, name: str) -> str | None:
        """The handle of a launch sent earlier under `name`, or None if the backend never got it."""
        ...

    def poll(self, handles: Sequence[str]) -> dict[str, Observation]:
        """Current state of each handle; an unknown handle comes back as LOST."""
        ...

    def cancel(self, handle: str) -> None:
        """Stop the launch (idempotent: cancelling an ended launch does nothing)."""
        ...

    def logs(self, handle: str, *, tail_bytes: int | None = None) -> bytes:
        """Combined stdout and stderr so far (the last `tail_bytes` if given)."""
        ...

    def close(self) -> None:
        """Release connections and helper processes (not the launches)."""
        ...
