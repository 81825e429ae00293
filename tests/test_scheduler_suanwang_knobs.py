"""suanwang's own parameters: small work first, local SMEs first, brief borrowing, faster pools."""

from __future__ import annotations

from suanwang.scheduler import (
    Policy,
    PoolState,
    QueuedJob,
    RunningJob,
    Snapshot,
    TenantState,
    Zone,
    schedule,
)

SME = TenantState("sme", local=True, sme=True)
OTHER = TenantState("other", local=True)


def pool(pool_id: str, accelerator: str, total: int, free: int, *, local: bool = False) -> PoolState:
    return PoolState(
        pool_id, "prov", "site", "pinghu", Zone.PUBLIC, accelerator, total, free, 8, 1000, local=local
    )


def placed(snapshot: Snapshot, policy: Policy) -> dict[str, str]:
    return {p.job_id: p.pool_id for p in schedule(snapshot, policy).places}


def test_small_work_goes_first_only_when_weighted():
    pools = (pool("a", "A800", 8, 8),)
    large = QueuedJob("large", "other", 8, 100_000, submit_s=0)
    small = QueuedJob("small", "other", 8, 1_000, submit_s=10)
    snapshot = Snapshot(20, pools, (large, small), (), (OTHER,))
    assert placed(snapshot, Policy()) == {"large": "a"}  # the earlier job, as fair share ties
    assert placed(snapshot, Policy(weight_small_work=50_000)) == {"small": "a"}


def test_local_sme_jobs_go_first_when_weighted():
    pools = (pool("a", "A800", 8, 8),)
    first = QueuedJob("first", "other", 8, 1_000, submit_s=0)
    sme = QueuedJob("sme-job", "sme", 8, 1_000, submit_s=10)
    snapshot = Snapshot(20, pools, (first, sme), (), (OTHER, SME))
    assert placed(snapshot, Policy(sme_guaranteed_share=0)) == {"first": "a"}
    assert placed(snapshot, Policy(sme_guaranteed_share=0, weight_local_sme=20_000)) == {"sme-job": "a"}


def test_brief_non_preemptible_work_borrows_the_idle_sme_share_only_while_no_sme_waits():
    pools = (pool("local", "A800", 8, 8, local=True),)  # 2 of 8 cards are the SMEs' (share 0.25)
    brief = QueuedJob("brief", "other", 8, 1_000, submit_s=0)  # 400 s on A800
    long = QueuedJob("long", "other", 8, 100_000, submit_s=0)
    policy = Policy(sme_guaranteed_share=0.25, sme_idle_borrow_max_s=3600)
    assert placed(Snapshot(0, pools, (brief,), (), (OTHER,)), Policy(sme_guaranteed_share=0.25)) == {}
    decisions = schedule(Snapshot(0, pools, (brief,), (), (OTHER,)), policy)
    assert [(p.job_id, p.borrowing) for p in decisions.places] == [("brief", True)]
    assert placed(Snapshot(0, pools, (long,), (), (OTHER,)), policy) == {}  # would hold it too long
    sme_waiting = QueuedJob("sme-big", "sme", 16, 1_000, submit_s=0)  # waits (too big), but it waits
    assert placed(Snapshot(0, pools, (brief, sme_waiting), (), (OTHER, SME)), policy) == {}


def test_waits_for_a_much_faster_pool_that_frees_soon():
    pools = (pool("h800", "H800", 8, 0), pool("h20", "H20", 8, 8))
    busy = (RunningJob("r", "x", "h800", 8, start_s=0, expected_end_s=600),)
    job = QueuedJob("j", "other", 8, 36_000, submit_s=0)  # H800: 4,548 s; H20: 30,405 s
    snapshot = Snapshot(0, pools, (job,), busy, (OTHER,))
    assert placed(snapshot, Policy()) == {"j": "h20"}
    decisions = schedule(snapshot, Policy(wait_for_faster_ratio=1.5))
    assert not decisions.places
    assert decisions.waits[0].reason.code == "faster-pool"
    assert dict(decisions.waits[0].reason.params)["pool"] == "h800"


def test_cost_tolerance_buys_an_earlier_finish_for_jobs_without_a_deadline():
    # H800: 4,548 s at 1,300 fen/h; A800: 14,423 s at 350 fen/h. Per job the A800 is cheaper (1,403 vs
    # 1,643 fen for one card, 17 % less), so suanwang takes it; a 30 % tolerance buys the H800.
    pools = (
        PoolState("h800", "p", "s", "r", Zone.PUBLIC, "H800", 8, 8, 8, 1300),
        PoolState("a800", "p", "s", "r", Zone.PUBLIC, "A800", 8, 8, 8, 350),
    )
    job = QueuedJob("j", "other", 1, 36_000, submit_s=0)
    snapshot = Snapshot(0, pools, (job,), (), (OTHER,))
    assert placed(snapshot, Policy()) == {"j": "a800"}
    assert placed(snapshot, Policy(cost_tolerance=0.1)) == {"j": "a800"}
    assert placed(snapshot, Policy(cost_tolerance=0.3)) == {"j": "h800"}
    with_deadline = QueuedJob("d", "other", 1, 36_000, submit_s=0, deadline_s=20_000)
    assert placed(Snapshot(0, pools, (with_deadline,), (), (OTHER,)), Policy(cost_tolerance=0.3)) == {
        "d": "a800"
    }


def test_policy_given_an_algorithm_name_runs_that_algorithm():
    pools = (pool("a", "A800", 8, 0),)
    busy = (RunningJob("r", "x", "a", 8, start_s=0, expected_end_s=100),)
    queued = (
        QueuedJob("head", "other", 8, 1000, submit_s=0),
        QueuedJob("next", "other", 8, 1000, submit_s=1),
    )
    decisions = schedule(Snapshot(5, pools, queued, busy, (OTHER,)), Policy(algorithm="fifo"))  # type: ignore[arg-type]
    assert [w.reason.code for w in decisions.waits] == ["capacity", "fifo-blocked"]
