"""Metrics of a simulation run: the issue's JSON keys plus a few extras (docs/simulator.md).

Definitions (all times in seconds of the trace clock):
- JCT of a finished job = end of its finishing attempt - submit time. Jobs that never finished count in
  `jobs_unfinished` and in no time metric.
- queue delay = start of the job's first attempt - submit time (finished jobs).
- percentiles interpolate linearly between closest ranks (numpy's default, "type 7").
- slowdown = JCT / the job's runtime on the fastest pool of the scenario it may use at all (hard
  constraints, pool health ignored), from `estimate.runtime_s`; `slowdown_mean` averages it.
- utilization = busy card-seconds / available card-seconds over the makespan [first submit, last event];
  busy counts every attempt, lost ones too (the cards were held); available = cards × (makespan - outage
  time). Per pool in `utilization_by_pool`.
- cost_total_fen = Σ over jobs of ⌈Σ over its attempts of cards × runtime × price / 3600⌉: every attempt
  is paid for, rounded up once per job (`estimate.cost_fen`).
- deadline_misses = jobs with a deadline that finished after it or never finished.
- constraint_violations = every broken invariant the engine counted (see engine.py); must be 0.
- cycle_ms_median = median wall time of one schedule() call.
"""

from __future__ import annotations

import math
import statistics
from collections.abc import Sequence
from dataclasses import replace
from typing import Any

from suanwang.scheduler import constraints, estimate
from suanwang.scheduler.policy import Policy
from suanwang.scheduler.simulate.engine import SimResult
from suanwang.scheduler.types import PoolState, QueuedJob

# The keys issue 3 fixes for `sim compare --out`, in this order.
KEYS = (
    "jct_mean_s",
    "jct_p95_s",
    "queue_delay_p95_s",
    "queue_delay_p95_s_local_sme",
    "slowdown_mean",
    "utilization",
    "cost_total_fen",
    "deadline_misses",
    "jain_fairness",
    "constraint_violations",
    "cycle_ms_median",
    "jobs_finished",
)


def percentile(values: Sequence[float], q: float) -> float | None:
    """The q-th percentile (0-100) with linear interpolation between closest ranks; None if empty."""
    if not values:
        return None
    ordered = sorted(values)
    rank = (len(ordered) - 1) * q / 100
    low = math.floor(rank)
    high = min(low + 1, len(ordered) - 1)
    return ordered[low] + (ordered[high] - ordered[low]) * (rank - low)


def jain_index(values: Sequence[float]) -> float | None:
    """Jain's fairness index (Σx)² / (n Σx²): 1 when all equal, 1/n when one gets everything."""
    if not values:
        return None
    squares = sum(x * x for x in values)
    return 1.0 if squares == 0 else sum(values) ** 2 / (len(values) * squares)


def jain_fairness(result: SimResult) -> float | None:
    """Jain's index over tenants' normalized service.

    Service of a tenant = the card-seconds its jobs held (all attempts, lost ones included) divided by
    its weight; the tenants are those with at least one job in the trace. 1.0 means every tenant got
    service in proportion to its weight.
    """
    weights = {t.id: t.weight for t in result.scenario.tenants}
    service: dict[str, float] = {}
    for record in result.jobs:
        tenant = record.job.tenant
        service[tenant] = service.get(tenant, 0.0) + sum(a.card_s for a in record.attempts)
    return jain_index([held / weights.get(tenant, 1.0) for tenant, held in sorted(service.items())])


def fastest_runtime_s(job: QueuedJob, pools: Sequence[PoolState], policy: Policy) -> float | None:
    """Runtime on the fastest of `pools` the job may use (health ignored); None when none allows it."""
    runtimes = [
        estimate.runtime_s(job, pool, policy)
        for pool in pools
        if constraints.violation(job, replace(pool, healthy=True) if not pool.healthy else pool) is None
    ]
    return min(runtimes, default=None)


def compute(result: SimResult) -> dict[str, Any]:
    """All metrics: the issue's KEYS first, then extras."""
    finished = [r for r in result.jobs if r.finished]
    jct = [r.end_s - r.job.submit_s for r in finished if r.end_s is not None]
    delay = [r.first_start_s - r.job.submit_s for r in finished if r.first_start_s is not None]
    local_sme = {t.id for t in result.scenario.tenants if t.local_sme}
    sme_delay = [
        r.first_start_s - r.job.submit_s
        for r in finished
        if r.job.tenant in local_sme and r.first_start_s is not None
    ]
    slowdowns = []
    for record, job_jct in zip(finished, jct, strict=True):
        fastest = fastest_runtime_s(record.job, result.scenario.pools, result.policy)
        if fastest:
            slowdowns.append(job_jct / fastest)
    busy_by_pool = dict.fromkeys((p.id for p in result.scenario.pools), 0.0)
    lost = 0.0
    for record in result.jobs:
        for attempt in record.attempts:
            busy_by_pool[attempt.pool_id] += attempt.card_s
            if attempt.outcome != "finished":
                lost += attempt.card_s
    makespan = max(result.end_s - result.start_s, 0.0)
    available = {
        p.id: p.cards_total * max(makespan - result.pool_down_s.get(p.id, 0.0), 0.0)
        for p in result.scenario.pools
    }
    total_available = sum(available.values())
    deadline_misses = sum(
        1
        for r in result.jobs
        if r.job.deadline_s is not None and (r.end_s is None or r.end_s > r.job.deadline_s + 1e-9)
    )
    metrics: dict[str, Any] = {
        "jct_mean_s": _mean(jct),
        "jct_p95_s": percentile(jct, 95),
        "queue_delay_p95_s": percentile(delay, 95),
        "queue_delay_p95_s_local_sme": percentile(sme_delay, 95),
        "slowdown_mean": _mean(slowdowns),
        "utilization": sum(busy_by_pool.values()) / total_available if total_available else 0.0,
        "cost_total_fen": sum(_job_cost_fen(r.attempts) for r in result.jobs),
        "deadline_misses": deadline_misses,
        "jain_fairness": jain_fairness(result),
        "constraint_violations": result.constraint_violations,
        "cycle_ms_median": statistics.median(result.cycle_ms) if result.cycle_ms else 0.0,
        "jobs_finished": len(finished),
        # Extras.
        "jct_median_s": percentile(jct, 50),
        "queue_delay_mean_s": _mean(delay),
        "preemptions": result.preemptions,
        "failures": result.failures,
        "outage_requeues": result.outage_requeues,
        "lost_card_s": lost,
        "jobs_total": len(result.jobs),
        "jobs_unfinished": len(result.jobs) - len(finished),
        "government_zone_violations": result.violations.get("government-zone", 0),
        "violations_by_kind": dict(sorted(result.violations.items())),
        "utilization_by_pool": {
            pool: busy / available[pool] if available[pool] else 0.0 for pool, busy in busy_by_pool.items()
        },
        "makespan_s": makespan,
        "cycles": len(result.cycle_ms),
        "schedule_wall_s": sum(result.cycle_ms) / 1000,
        "sim_wall_s": result.wall_s,
    }
    return metrics


def _job_cost_fen(attempts: Sequence[Any]) -> int:
    if not attempts:
        return 0
    if len(attempts) == 1:
        a = attempts[0]
        return estimate.cost_fen(a.cards, a.end_s - a.start_s, a.price_fen_per_card_hour)
    # Several attempts: sum the exact fen, round up once (cost_fen with cards = price = 1 does just that).
    fen_seconds = sum(a.cards * (a.end_s - a.start_s) * a.price_fen_per_card_hour for a in attempts)
    return estimate.cost_fen(1, fen_seconds, 1)


def _mean(values: Sequence[float]) -> float | None:
    return sum(values) / len(values) if values else None
