"""Policy: which algorithm and its parameters. Plain data, loadable from a scenario's [policy] table."""

from __future__ import annotations

import enum
from dataclasses import dataclass, field, fields, replace
from typing import Any


class Algorithm(enum.StrEnum):
    SUANWANG = "suanwang"  # priority + fair share + SME guarantee + heterogeneity/cost + EASY backfill
    FIFO = "fifo"  # strict first-in first-out, head of line blocks, first pool that fits
    BACKFILL = "backfill"  # Slurm-like: multifactor priority, fair share, EASY backfill, partition order
    CHEAPEST = "cheapest"  # SkyPilot-like: cheapest feasible pool by estimated cost, fail over to next


DAY_S = 86_400.0


@dataclass(frozen=True, slots=True)
class Policy:
    algorithm: Algorithm = Algorithm.SUANWANG
    # The accelerator trace durations were measured on; runtimes elsewhere scale by throughput.
    reference_accelerator: str = "V100"
    # Fair share: usage decays with this half-life (Slurm's PriorityDecayHalfLife default is 7 days).
    fairshare_half_life_s: float = 7 * DAY_S
    # Share of every local pool guaranteed to local SMEs (a nominal quota others may borrow while idle).
    sme_guaranteed_share: float = 0.25
    # suanwang only. Per-pool share overriding sme_guaranteed_share for the pools named ({id: share}), so
    # the guarantee can be held where it costs others least (e.g. on slower local pools; 0 frees a pool).
    sme_share_by_pool: dict[str, float] = field(default_factory=dict)
    # Multifactor weights (Slurm-like and suanwang): age saturates at max_age_s.
    weight_age: float = 1000.0
    weight_fairshare: float = 10000.0
    weight_size: float = 0.0
    weight_priority: float = 100000.0
    max_age_s: float = 7 * DAY_S
    # Backfill looks at most this many queued jobs per cycle (Slurm: bf_max_job_test); the rest wait.
    backfill_depth: int = 100_000
    # Pools in "partition" order for the Slurm-like baseline (ids); unlisted pools follow by id.
    pool_order: tuple[str, ...] = ()
    # Throughput relative to the catalogue ratio, per job type and accelerator: {"ResNet-50": {"A800": 0.8}}.
    throughput_overrides: dict[str, dict[str, float]] = field(default_factory=dict)
    # Preempt preemptible lower-priority work for jobs of at least this priority (None: never).
    preempt_for_priority: int | None = None
    # suanwang only. Non-preemptible work may borrow the SMEs' idle share when no local SME job waits
    # and it is estimated to end within this many seconds (0: never; then only preemptible work borrows).
    sme_idle_borrow_max_s: float = 0.0
    # suanwang only. Priority added to local SMEs' jobs (the report: they "cannot get priority").
    weight_local_sme: float = 0.0
    # suanwang only. Priority for small work, on a log scale of estimated card-seconds (1 for the
    # smallest, 0 for the largest in the queue): shortest-first lowers mean completion time; the age
    # factor keeps large work from starving.
    weight_small_work: float = 0.0
    # suanwang only. A job without a deadline takes the earliest finish among the pools within this
    # fraction of its cheapest estimated cost (0: the cheapest; 0.1: up to 10 % dearer if sooner).
    cost_tolerance: float = 0.0
    # suanwang only. Wait for a busy pool instead of starting now when starting now would finish more
    # than this many times later, counted from now (None: always start now if some pool can). Local SMEs'
    # jobs never wait for a faster pool: what they are guaranteed is a prompt start.
    wait_for_faster_ratio: float | None = None

    def __post_init__(self) -> None:
        # The core compares algorithms by identity: Policy(algorithm="fifo") must mean FIFO, not suanwang.
        object.__setattr__(self, "algorithm", Algorithm(self.algorithm))
        object.__setattr__(self, "pool_order", tuple(self.pool_order))

    @classmethod
    def from_dict(cls, data: dict[str, Any], **overrides: Any) -> Policy:
        """Build from a TOML table; unknown keys are an error naming them."""
        known = {f.name for f in fields(cls)}
        unknown = sorted(set(data) - known)
        if unknown:
            raise ValueError(
                f"unknown policy parameter(s): {', '.join(unknown)}; known: {', '.join(sorted(known))}"
            )
        values = dict(data) | overrides
        if "algorithm" in values:
            values["algorithm"] = Algorithm(values["algorithm"])
        if "pool_order" in values:
            values["pool_order"] = tuple(values["pool_order"])
        return cls(**values)

    @classmethod
    def shipped(cls, **overrides: Any) -> Policy:
        """The suanwang policy the controller runs by default: the knobs chosen on the development
        trace (the pinghu-dev scenario's [policy] less its Slurm partition order; docs/benchmarks.md)."""
        tuned: dict[str, Any] = {
            "sme_guaranteed_share": 0.25,
            "sme_idle_borrow_max_s": 21_600.0,
            "weight_local_sme": 20_000.0,
            "weight_small_work": 50_000.0,
            "wait_for_faster_ratio": 3.0,
        }
        return cls.from_dict(tuned | overrides)

    def with_algorithm(self, algorithm: Algorithm | str) -> Policy:
        return replace(self, algorithm=Algorithm(algorithm))
