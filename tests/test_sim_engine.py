"""The discrete-event engine: exact hand-computed replays, outages, failures, usage decay, invariants."""

from __future__ import annotations

import math
from dataclasses import replace

import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from suanwang.scheduler import schedule
from suanwang.scheduler.policy import Algorithm, Policy
from suanwang.scheduler.simulate import Fault, Scenario, SimResult, simulate
from suanwang.scheduler.types import (
    Classification,
    Decisions,
    Place,
    Preempt,
    QueuedJob,
    Reason,
    Snapshot,
    TenantState,
    Zone,
)
from tests.sim_world import FIVE_JOBS, TWO_POOLS, job, pool


def run(scenario: Scenario, jobs, algorithm: str = "fifo", **kw) -> SimResult:
    return simulate(scenario, jobs, scenario.policy(algorithm), **kw)


def timeline(result: SimResult) -> dict[str, tuple[str, float, float]]:
    """job -> (pool, start, end) of its finishing attempt."""
    return {
        r.job.id: (r.attempts[-1].pool_id, r.attempts[-1].start_s, r.attempts[-1].end_s)
        for r in result.jobs
        if r.finished
    }


def test_fifo_replay_matches_the_hand_computed_timeline() -> None:
    # t=0: j1 takes p1 (4 of 4), j2 p2 (2 of 2). j3 (t=10) heads the queue and blocks j4 and j5.
    # t=50: j2 ends, j3 -> p2 until 80. t=80: j4 -> p2 until 90; j5 needs 4 cards: waits for p1.
    # t=100: j1 ends, j5 -> p1 until 120.
    result = run(TWO_POOLS, FIVE_JOBS)
    assert timeline(result) == {
        "j1": ("p1", 0, 100),
        "j2": ("p2", 0, 50),
        "j3": ("p2", 50, 80),
        "j4": ("p2", 80, 90),
        "j5": ("p1", 100, 120),
    }
    assert result.violations == {} and (result.start_s, result.end_s) == (0, 120)
    assert result.preemptions == result.failures == result.outage_requeues == 0
    assert len(result.cycle_ms) == 8 and all(ms >= 0 for ms in result.cycle_ms)


def test_schedule_runs_once_per_event_time_with_a_queue() -> None:
    seen: list[float] = []

    def spy(snapshot: Snapshot, policy: Policy) -> Decisions:
        seen.append(snapshot.now_s)
        return schedule(snapshot, policy)

    run(TWO_POOLS, FIVE_JOBS, schedule_fn=spy)
    # Events at 0, 10, 20, 30, 50, 80, 90, 100, 120; at 90 the queue still holds j5; at 120 it is empty.
    assert seen == [0, 10, 20, 30, 50, 80, 90, 100]


def test_runtime_scales_with_accelerator_throughput() -> None:
    scenario = Scenario(reference_accelerator="V100", pools=(pool("fast", 8, accelerator="A100"),))
    result = run(scenario, [job("a", 0, 1, 312.0), job("cpu", 0, 0, 50.0)])
    ends = {r.job.id: r.end_s for r in result.jobs}
    assert ends["a"] == pytest.approx(125.0)  # A100 312 TFLOPS vs V100 125
    assert ends["cpu"] == 50.0  # CPU work does not speed up


def test_outage_requeues_the_running_job_and_counts_lost_work() -> None:
    scenario = replace(TWO_POOLS, faults=(Fault("p1", 30, 60),))
    result = run(scenario, [job("a", 0, 2, 100)])
    (record,) = result.jobs
    assert [(a.pool_id, a.start_s, a.end_s, a.outcome) for a in record.attempts] == [
        ("p1", 0, 30, "outage"),
        ("p2", 30, 130, "finished"),  # restarted from scratch on the other pool
    ]
    assert result.outage_requeues == 1 and result.pool_down_s == {"p1": 30, "p2": 0}


def test_outage_of_the_only_pool_waits_for_the_restore() -> None:
    scenario = Scenario(reference_accelerator="V100", pools=(pool("p1", 4),))
    result = run(scenario, [job("a", 0, 2, 100), job("b", 40, 1, 10)], faults=[Fault("p1", 30, 60)])
    assert timeline(result) == {"a": ("p1", 60, 160), "b": ("p1", 60, 70)}
    assert result.jobs[0].attempts[0].outcome == "outage"


def test_injected_failures_retry_and_are_deterministic() -> None:
    jobs = [job(f"j{i}", i * 5, 1, 100) for i in range(20)]
    first = run(TWO_POOLS, jobs, failure_rate=0.5, seed=7)
    again = run(TWO_POOLS, jobs, failure_rate=0.5, seed=7)
    assert first.failures > 0 and all(r.finished for r in first.jobs)
    assert [r.attempts for r in first.jobs] == [r.attempts for r in again.jobs]
    failed = [a for r in first.jobs for a in r.attempts if a.outcome == "failed"]
    assert len(failed) == first.failures and all(a.end_s - a.start_s < 100 for a in failed)
    with pytest.raises(ValueError, match="failure_rate"):
        run(TWO_POOLS, jobs, failure_rate=1.0)


def test_tenant_usage_decays_with_the_half_life() -> None:
    scenario = Scenario(
        reference_accelerator="V100",
        pools=(pool("p1", 4),),
        tenants=(TenantState("a"), TenantState("b")),
        policy_table={"fairshare_half_life_s": 100.0},
    )
    usage: dict[float, dict[str, float]] = {}

    def spy(snapshot: Snapshot, policy: Policy) -> Decisions:
        usage[snapshot.now_s] = {t.id: t.usage_card_s for t in snapshot.tenants}
        return schedule(snapshot, policy)

    run(scenario, [job("x", 0, 2, 100, tenant="a"), job("y", 200, 1, 10, tenant="b")], schedule_fn=spy)
    # a held 2 cards over [0, 100]: 2 × 100/ln 2 × (1 - 1/2) at t=100, halved again by t=200.
    assert usage[0] == {"a": 0.0, "b": 0.0}
    assert usage[200]["a"] == pytest.approx(2 * 100 / math.log(2) * 0.5 * 0.5)
    assert usage[200]["b"] == 0.0


def test_borrowing_flag_and_expected_end_reach_the_running_jobs() -> None:
    snapshots: list[Snapshot] = []

    def borrower(snapshot: Snapshot, policy: Policy) -> Decisions:
        snapshots.append(snapshot)
        places = tuple(
            Place(j.id, "p1", j.cards, j.duration_s, 0, snapshot.now_s + j.duration_s, borrowing=True)
            for j in snapshot.queued
        )
        return Decisions(places=places)

    run(TWO_POOLS, [job("a", 0, 1, 100), job("b", 10, 1, 5)], schedule_fn=borrower)
    (running,) = snapshots[1].running
    assert (running.id, running.borrowing, running.start_s, running.expected_end_s) == ("a", True, 0, 100)


def test_preemption_requeues_with_the_next_attempt() -> None:
    def preempt_then_place(snapshot: Snapshot, policy: Policy) -> Decisions:
        if any(j.id == "b" for j in snapshot.queued):  # b arrives: a yields, b takes its cards
            return Decisions(
                places=(Place("b", "p2", 2, 5, 0, 15),),
                preempts=(Preempt("a", Reason("priority")),),
            )
        return schedule(snapshot, policy)

    attempts: list[int] = []

    def spy(snapshot: Snapshot, policy: Policy) -> Decisions:
        attempts.extend(j.attempt for j in snapshot.queued if j.id == "a")
        return preempt_then_place(snapshot, policy)

    result = run(TWO_POOLS, [job("a", 0, 2, 100), job("b", 10, 2, 5)], schedule_fn=spy)
    a = result.jobs[0]
    assert [(x.pool_id, x.start_s, x.end_s, x.outcome) for x in a.attempts] == [
        ("p1", 0, 10, "preempted"),
        ("p1", 10, 110, "finished"),  # the re-look after a preemption places it again at once
    ]
    assert result.preemptions == 1 and 1 in attempts and result.violations == {}


def test_broken_decisions_are_counted_not_fatal() -> None:
    scenario = Scenario(
        reference_accelerator="V100",
        pools=(pool("pub", 2), pool("gov", 2, zone=Zone.GOVERNMENT)),
    )
    jobs = [
        job("g", 0, 1, 10, classification=Classification.GOVERNMENT),
        job("big", 0, 2, 10),
        job("big2", 0, 2, 10),
    ]

    def reckless(snapshot: Snapshot, policy: Policy) -> Decisions:
        if snapshot.now_s > 0:
            return schedule(snapshot, policy)
        return Decisions(
            places=(
                Place("g", "pub", 1, 10, 0, 10),  # government work on a public pool
                Place("big", "pub", 2, 10, 0, 10),  # only 1 card left: over-allocation
                Place("ghost", "pub", 1, 10, 0, 10),  # not queued
                Place("big2", "nowhere", 2, 10, 0, 10),  # unknown pool
            ),
            preempts=(Preempt("nobody", Reason("priority")),),
        )

    result = run(scenario, jobs, schedule_fn=reckless)
    assert result.violations == {
        "government-zone": 1,
        "over-allocation": 1,
        "place-invalid": 2,
        "preempt-not-running": 1,
    }
    assert result.constraint_violations == 5 and len(result.violation_examples) == 5
    assert all(r.finished for r in result.jobs)  # the real scheduler picked up the rest


def test_cycle_s_limits_how_often_schedule_runs() -> None:
    seen: list[float] = []

    def spy(snapshot: Snapshot, policy: Policy) -> Decisions:
        seen.append(snapshot.now_s)
        return schedule(snapshot, policy)

    result = run(TWO_POOLS, FIVE_JOBS, cycle_s=40, schedule_fn=spy)
    # 0; then at most every 40 s: 40 (nothing free), 80 (j3), 120 (j4), 160 (j5).
    assert seen == [0, 40, 80, 120, 160]
    assert all(r.finished for r in result.jobs)


def test_policy_must_share_the_scenarios_reference_accelerator() -> None:
    with pytest.raises(ValueError, match="reference accelerator"):
        simulate(TWO_POOLS, FIVE_JOBS, Policy(reference_accelerator="A800"))


# --- invariants over random small worlds -------------------------------------------------------------


@st.composite
def worlds(draw: st.DrawFn) -> tuple[Scenario, list[QueuedJob]]:
    pools = tuple(
        pool(
            f"p{i}",
            draw(st.sampled_from([2, 4, 8])),
            price=draw(st.integers(100, 2000)),
            accelerator=draw(st.sampled_from(["V100", "A800", "H800"])),
            zone=draw(st.sampled_from([Zone.PUBLIC, Zone.GOVERNMENT])),
            local=draw(st.booleans()),
        )
        for i in range(draw(st.integers(1, 3)))
    )
    tenants = (
        TenantState("sme", local=True, sme=True),
        TenantState("big"),
        TenantState("gov", kind="government"),
    )
    jobs = [
        job(
            f"j{i}",
            draw(st.integers(0, 200)),
            draw(st.sampled_from([0, 1, 2, 4, 8])),
            draw(st.integers(1, 300)),
            tenant=draw(st.sampled_from(["sme", "big", "gov"])),
            preemptible=draw(st.booleans()),
            classification=draw(st.sampled_from([Classification.PUBLIC, Classification.GOVERNMENT])),
        )
        for i in range(draw(st.integers(1, 12)))
    ]
    faults = tuple(
        Fault(p.id, start, start + draw(st.integers(1, 100)))
        for p in pools
        if draw(st.booleans())
        for start in [draw(st.integers(0, 300))]
    )
    return Scenario(reference_accelerator="V100", pools=pools, tenants=tenants, faults=faults), jobs


@settings(max_examples=30, deadline=None, suppress_health_check=[HealthCheck.too_slow])
@given(world=worlds(), algorithm=st.sampled_from(list(Algorithm)), failure_rate=st.sampled_from([0.0, 0.3]))
def test_no_invariant_ever_breaks(
    world: tuple[Scenario, list[QueuedJob]], algorithm: Algorithm, failure_rate: float
):
    scenario, jobs = world

    def checked(snapshot: Snapshot, policy: Policy) -> Decisions:
        for p in snapshot.pools:
            held = sum(r.cards for r in snapshot.running if r.pool_id == p.id)
            assert p.cards_free >= 0 and held + p.cards_free == p.cards_total
            if not p.healthy:
                assert held == 0
        running = {r.id for r in snapshot.running}
        assert running.isdisjoint(j.id for j in snapshot.queued)
        return schedule(snapshot, policy)

    result = run(scenario, jobs, algorithm.value, failure_rate=failure_rate, seed=3, schedule_fn=checked)
    assert result.violations == {}
    for record in result.jobs:
        for attempt in record.attempts:
            if record.job.classification is Classification.GOVERNMENT:
                assert scenario.pool(attempt.pool_id).zone is Zone.GOVERNMENT
    if algorithm is not Algorithm.SUANWANG:  # suanwang may hold back local cards for SMEs
        assert all(
            r.finished
            for r in result.jobs
            if any(
                r.job.cards <= p.cards_total
                and (r.job.classification is not Classification.GOVERNMENT or p.zone is Zone.GOVERNMENT)
                for p in scenario.pools
            )
        )
