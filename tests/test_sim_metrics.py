"""Metrics on tiny replays whose every number is computed by hand."""

from __future__ import annotations

from dataclasses import replace

import pytest

from suanwang.scheduler.simulate import METRIC_KEYS, Fault, Scenario, compute_metrics, simulate
from suanwang.scheduler.simulate.metrics import jain_index, percentile
from suanwang.scheduler.types import TenantState
from tests.sim_world import FIVE_JOBS, TWO_POOLS, job, pool

# p1: 4 V100 at 3600 fen/card-hour (1 fen per card-second); p2: 2 V100 at 1000.
# FIFO timeline (test_sim_engine): j1 p1 0-100, j2 p2 0-50, j3 p2 50-80, j4 p2 80-90, j5 p1 100-120.
SCENARIO = replace(
    TWO_POOLS,
    tenants=(TenantState("A", weight=2.0), TenantState("B"), TenantState("C", local=True, sme=True)),
)
TENANT = {"j1": "A", "j5": "A", "j2": "B", "j3": "B", "j4": "C"}
DEADLINE = {"j3": 80.0, "j5": 110.0}  # j3 ends exactly at 80 (met), j5 at 120 (missed)
JOBS = [replace(j, tenant=TENANT[j.id], deadline_s=DEADLINE.get(j.id)) for j in FIVE_JOBS]


def test_the_issue_keys_come_first_with_exact_values() -> None:
    metrics = compute_metrics(simulate(SCENARIO, JOBS, SCENARIO.policy("fifo")))
    assert list(metrics)[: len(METRIC_KEYS)] == list(METRIC_KEYS)
    # JCT: 100, 50, 70, 70, 90. Queue delay: 0, 0, 40, 60, 70.
    assert metrics["jct_mean_s"] == pytest.approx(76.0)
    assert metrics["jct_p95_s"] == pytest.approx(98.0)  # rank 3.8 of [50, 70, 70, 90, 100]
    assert metrics["jct_median_s"] == pytest.approx(70.0)
    assert metrics["queue_delay_p95_s"] == pytest.approx(68.0)  # rank 3.8 of [0, 0, 40, 60, 70]
    assert metrics["queue_delay_mean_s"] == pytest.approx(34.0)
    assert metrics["queue_delay_p95_s_local_sme"] == pytest.approx(60.0)  # only j4 (tenant C)
    # Slowdown: 100/100, 50/50, 70/30, 70/10, 90/20.
    assert metrics["slowdown_mean"] == pytest.approx((1 + 1 + 70 / 30 + 7 + 4.5) / 5)
    # Busy card-s: 400 + 100 + 60 + 10 + 80 = 650 of 6 cards × 120 s.
    assert metrics["utilization"] == pytest.approx(650 / 720)
    assert metrics["utilization_by_pool"] == pytest.approx({"p1": 480 / 480, "p2": 170 / 240})
    # Cost, rounded up per job: 400 + 80 on p1; ⌈27.8⌉ + ⌈16.7⌉ + ⌈2.8⌉ on p2.
    assert metrics["cost_total_fen"] == 400 + 80 + 28 + 17 + 3
    assert metrics["deadline_misses"] == 1
    # Service / weight: A 480/2 = 240, B 160, C 10.
    assert metrics["jain_fairness"] == pytest.approx(410**2 / (3 * (240**2 + 160**2 + 10**2)))
    assert metrics["constraint_violations"] == 0
    assert metrics["jobs_finished"] == 5 and metrics["jobs_unfinished"] == 0
    assert metrics["cycle_ms_median"] >= 0 and metrics["cycles"] == 8
    assert (metrics["preemptions"], metrics["lost_card_s"], metrics["makespan_s"]) == (0, 0.0, 120)


def test_lost_work_is_paid_and_busy_and_outage_time_is_not_available() -> None:
    scenario = replace(TWO_POOLS, faults=(Fault("p1", 30, 60),))
    metrics = compute_metrics(simulate(scenario, [job("a", 0, 2, 100)], scenario.policy("fifo")))
    # p1 0-30 (lost to the outage), then p2 30-130.
    assert metrics["lost_card_s"] == 60 and metrics["outage_requeues"] == 1
    assert metrics["cost_total_fen"] == 116  # ⌈2×30×3600/3600 + 2×100×1000/3600⌉ = ⌈115.6⌉, one rounding
    assert metrics["utilization"] == pytest.approx(260 / (4 * 100 + 2 * 130))
    assert metrics["jct_mean_s"] == 130 and metrics["queue_delay_p95_s"] == 0


def test_a_restore_after_the_last_job_does_not_stretch_the_makespan() -> None:
    scenario = replace(TWO_POOLS, faults=(Fault("p2", 500, 900),))
    metrics = compute_metrics(simulate(scenario, [job("a", 0, 4, 100)], scenario.policy("fifo")))
    assert metrics["makespan_s"] == 100 and metrics["utilization"] == pytest.approx(400 / 600)


def test_jobs_that_never_run_are_unfinished_and_miss_their_deadline() -> None:
    jobs = [job("ok", 0, 1, 10), job("huge", 0, 16, 10, deadline_s=1000.0)]
    metrics = compute_metrics(simulate(TWO_POOLS, jobs, TWO_POOLS.policy("backfill")))
    assert (metrics["jobs_finished"], metrics["jobs_unfinished"], metrics["deadline_misses"]) == (1, 1, 1)
    assert metrics["slowdown_mean"] == 1.0 and metrics["queue_delay_p95_s_local_sme"] is None


def test_empty_trace() -> None:
    metrics = compute_metrics(simulate(TWO_POOLS, [], TWO_POOLS.policy("fifo")))
    assert metrics["jobs_finished"] == 0 and metrics["jct_mean_s"] is None and metrics["utilization"] == 0.0
    assert metrics["jain_fairness"] is None and metrics["cycle_ms_median"] == 0.0


def test_percentile_and_jain_index() -> None:
    assert percentile([], 95) is None
    assert percentile([7.0], 95) == 7.0
    assert percentile([1, 2, 3, 4], 50) == 2.5
    assert percentile([0, 10], 95) == pytest.approx(9.5)
    assert jain_index([5, 5, 5]) == 1.0
    assert jain_index([1, 0, 0, 0]) == pytest.approx(0.25)
    assert jain_index([0, 0]) == 1.0 and jain_index([]) is None


def test_slowdown_uses_the_fastest_allowed_pool() -> None:
    scenario = Scenario(
        reference_accelerator="V100", pools=(pool("slow", 1), pool("fast", 1, accelerator="A100"))
    )
    # j1 may only use the A100 ("fast", 125 s); j2 then finds "fast" taken and runs on "slow" (312 s),
    # so its slowdown is measured against the A100 it could have had.
    jobs = [job("j1", 0, 1, 312.0, accelerators=frozenset({"A100"})), job("j2", 0, 1, 312.0)]
    result = simulate(scenario, jobs, scenario.policy("fifo"))
    ends = {r.job.id: r.end_s for r in result.jobs}
    assert ends == {"j1": pytest.approx(125.0), "j2": pytest.approx(312.0)}
    metrics = compute_metrics(result)
    assert metrics["slowdown_mean"] == pytest.approx((1.0 + 312.0 / 125.0) / 2)
